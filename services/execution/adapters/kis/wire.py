"""The KIS protocol as data: tr_ids, order codes, the error envelope, WebSocket frames and
execution notices, query rows. Pure functions; sources are shared/brokers/kis.md sections.

Where the sources disagree both forms are parsed (the notice layout, response key casing,
the branch field of an order row) and the form met is reported, so an operator can tell.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocol.enums import OrderType, Side, TimeInForce
from services.execution.adapters.common.errors import (
    AuthError,
    BadResponse,
    BrokerError,
    RateLimited,
    Rejected,
    TokenExpired,
    TokenThrottled,
)

Mode = Literal["paper", "live"]

# ------------------------------------------------------------------ paths and tr_ids (4)
TOKEN_PATH = "/oauth2/tokenP"
APPROVAL_PATH = "/oauth2/Approval"
ORDER_CASH_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
ORDER_RVSECNCL_PATH = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
DAILY_CCLD_PATH = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"
PSBL_RVSECNCL_PATH = "/uapi/domestic-stock/v1/trading/inquire-psbl-rvsecncl"
BALANCE_PATH = "/uapi/domestic-stock/v1/trading/inquire-balance"
PSBL_ORDER_PATH = "/uapi/domestic-stock/v1/trading/inquire-psbl-order"

# the new ids (the portal warns the old ones may be blocked without notice)
TR_IDS: dict[str, dict[Mode, str]] = {
    "buy": {"live": "TTTC0012U", "paper": "VTTC0012U"},
    "sell": {"live": "TTTC0011U", "paper": "VTTC0011U"},
    "rvsecncl": {"live": "TTTC0013U", "paper": "VTTC0013U"},
    "daily_ccld": {"live": "TTTC0081R", "paper": "VTTC0081R"},
    "psbl_rvsecncl": {"live": "TTTC0084R", "paper": ""},  # live only (4.8)
    "balance": {"live": "TTTC8434R", "paper": "VTTC8434R"},
    "psbl_order": {"live": "TTTC8908R", "paper": "VTTC8908R"},
}
NOTICE_TR: dict[Mode, str] = {"live": "H0STCNI0", "paper": "H0STCNI9"}


def tr_id(what: str, mode: Mode) -> str:
    value = TR_IDS[what][mode]
    if not value:
        raise ValueError(f"KIS {what} is not available in {mode} mode")
    return value


# ------------------------------------------------------------------ order division (4.3)
ORD_DVSN: dict[tuple[OrderType, TimeInForce], str] = {
    (OrderType.LIMIT, TimeInForce.DAY): "00",
    (OrderType.MARKET, TimeInForce.DAY): "01",
    (OrderType.CONDITIONAL, TimeInForce.DAY): "02",
    (OrderType.BEST, TimeInForce.DAY): "03",
    (OrderType.PRIORITY, TimeInForce.DAY): "04",
    (OrderType.LIMIT, TimeInForce.IOC): "11",
    (OrderType.LIMIT, TimeInForce.FOK): "12",
    (OrderType.MARKET, TimeInForce.IOC): "13",
    (OrderType.MARKET, TimeInForce.FOK): "14",
    (OrderType.BEST, TimeInForce.IOC): "15",
    (OrderType.BEST, TimeInForce.FOK): "16",
}
PAPER_ORD_DVSN = {"00", "01", "02", "03", "04"}  # python-kis: the rest "모의투자 미지원"
PRICED_ORD_DVSN = {"00", "02", "11", "12"}  # the others go with ORD_UNPR "0"


class Unsupported(ValueError):
    """An order KIS cannot take as asked (refused before sending)."""


def ord_dvsn(order_type: OrderType, tif: TimeInForce, mode: Mode) -> str:
    code = ORD_DVSN.get((order_type, tif))
    if code is None:
        raise Unsupported(f"KIS has no order division for {order_type.value} {tif.value}")
    if mode == "paper" and code not in PAPER_ORD_DVSN:
        raise Unsupported(f"KIS paper trading does not take ORD_DVSN {code} ({tif.value})")
    return code


# ------------------------------------------------------------------ numbers
def to_int(value: Any, what: str = "value") -> int:
    """A KIS numeric string ("70000", "70000.00", " 12 ", "") as an int; a fraction is an
    error (prices and quantities are whole)."""
    if isinstance(value, int):
        return value
    text = str(value if value is not None else "").strip().replace(",", "")
    if text == "":
        return 0
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise BadResponse("BAD_NUMBER", f"{what}: {text!r} is not a number") from None
    if number != number.to_integral_value():
        raise BadResponse("BAD_NUMBER", f"{what}: {text!r} is not a whole number")
    return int(number)


def round_int(value: Any) -> int:
    """A KIS average ("70123.45") rounded half up to an int."""
    text = str(value if value is not None else "").strip().replace(",", "") or "0"
    try:
        return int(Decimal(text).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        raise BadResponse("BAD_NUMBER", f"{text!r} is not a number") from None


def field(row: dict[str, Any], name: str, default: str = "") -> str:
    """A response field by name whatever its casing (the portal and samples disagree: order
    answers UPPER, rvsecncl lower per the portal and UPPER per python-kis, excg_id_dvsn_Cd)."""
    if name in row:
        return str(row[name])
    low = name.lower()
    for key, value in row.items():
        if key.lower() == low:
            return str(value)
    return default


# ------------------------------------------------------------------ errors (3.2, 6.2)
RATE_CODES = {"EGW00201", "EGW00215"}
# "연결/거래시간 초과 - 직전 거래를 반드시 확인하세요": the order may have gone through (6.2)
UNKNOWN_CODES = {"EGW00301", "EGW00302"}
TOKEN_CODES = {"EGW00121", "EGW00122", "EGW00123"}
AUTH_CODES = {
    "EGW00103", "EGW00105", "EGW00205", "EGW00206", "EGW00207", "EGW00208", "EGW00210",
    "EGW00213", "EGW02004",
}  # fmt: skip


def error_for(code: str, message: str, http_status: int = 200) -> BrokerError:
    code = code.strip()
    if code in RATE_CODES:
        return RateLimited(code, message, http_status)
    if code in TOKEN_CODES:
        return TokenExpired(code, message, http_status)
    if code in UNKNOWN_CODES:
        return BrokerError(code, message, http_status)  # neither refused nor done: unknown
    if code == "EGW00133":
        return TokenThrottled(code, message, http_status)
    if code in AUTH_CODES or "모의투자 TR" in message:
        return AuthError(code, message, http_status)
    if code.startswith("EGW") or http_status >= 500:
        return BrokerError(code, message, http_status)
    return Rejected(code, message, http_status)


def parse_body(http_status: int, text: str) -> dict[str, Any]:
    """The JSON body whatever the HTTP status (gateway errors come as 500 with a body)."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        raise BadResponse(
            f"HTTP{http_status}", f"not JSON (HTTP {http_status}): {text[:200]!r}", http_status
        ) from None
    if not isinstance(body, dict):
        raise BadResponse(f"HTTP{http_status}", "JSON body is not an object", http_status)
    return body


def check_envelope(http_status: int, body: dict[str, Any]) -> dict[str, Any]:
    """Raise the typed error an answer carries, else return it. Two shapes: the usual
    rt_cd/msg_cd/msg1, and the token endpoint's error_code/error_description."""
    if "error_code" in body:
        raise error_for(
            str(body["error_code"]), str(body.get("error_description", "")), http_status
        )
    if "rt_cd" in body:
        if str(body["rt_cd"]).strip() == "0":
            return body
        raise error_for(str(body.get("msg_cd", "")), str(body.get("msg1", "")), http_status)
    if http_status >= 400:
        raise BrokerError(f"HTTP{http_status}", json.dumps(body)[:200], http_status)
    return body  # the token and approval answers have no envelope


# ------------------------------------------------------------------ WebSocket (5)
@dataclass(frozen=True)
class Control:
    """A JSON message: a subscribe answer, PINGPONG, or an error."""

    tr_id: str
    tr_key: str
    rt_cd: str
    msg_cd: str
    msg1: str
    key: str
    iv: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class Data:
    """A data frame `flag|tr_id|count|payload`; records split into count lists of fields."""

    encrypted: bool
    tr_id: str
    count: int
    payload: str


class FrameError(ValueError):
    pass


def parse_frame(text: str) -> Control | Data:
    if text[:1] in ("0", "1"):
        parts = text.split("|", 3)
        if len(parts) != 4:
            raise FrameError(f"data frame with {len(parts)} parts: {text[:60]!r}")
        flag, tr, count, payload = parts
        if not count.isdigit():
            raise FrameError(f"data frame count {count!r} is not a number")
        return Data(flag == "1", tr, int(count), payload)
    try:
        msg = json.loads(text)
    except ValueError:
        raise FrameError(f"neither a data frame nor JSON: {text[:60]!r}") from None
    if not isinstance(msg, dict):
        raise FrameError("JSON control message is not an object")
    header = msg.get("header") or {}
    body = msg.get("body") or {}
    output = body.get("output") or {}
    return Control(
        tr_id=str(header.get("tr_id", "")),
        tr_key=str(header.get("tr_key", "")),
        rt_cd=str(body.get("rt_cd", "")),
        msg_cd=str(body.get("msg_cd", "")),
        msg1=str(body.get("msg1", "")),
        key=str(output.get("key", "")) if isinstance(output, dict) else "",
        iv=str(output.get("iv", "")) if isinstance(output, dict) else "",
        raw=msg,
    )


def records(payload: str, count: int, width: int | None = None) -> list[list[str]]:
    """Split `count` records out of a ^-separated payload. width None: each record is
    len(fields)/count wide (the notice layout varies, so it is not fixed)."""
    fields = payload.split("^")
    if count <= 0:
        raise FrameError(f"record count {count}")
    if width is None:
        if len(fields) % count:
            raise FrameError(f"{len(fields)} fields do not split into {count} records")
        width = len(fields) // count
    if len(fields) < width * count:
        raise FrameError(f"{len(fields)} fields, {count} records of {width} expected")
    return [fields[i * width : (i + 1) * width] for i in range(count)]


def subscribe_message(approval_key: str, tr: str, tr_key: str, subscribe: bool = True) -> str:
    return json.dumps(
        {
            "header": {
                "approval_key": approval_key,
                "custtype": "P",
                "tr_type": "1" if subscribe else "2",
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": tr, "tr_key": tr_key}},
        }
    )


def decrypt(key: str, iv: str, text: str) -> str:
    """base64 -> AES-256-CBC (key and iv are the subscribe answer's strings as UTF-8 bytes)
    -> PKCS7 unpad -> UTF-8 (5.3)."""
    try:
        data = base64.b64decode(text, validate=False)
        dec = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).decryptor()
        padded = dec.update(data) + dec.finalize()
        unpad = padding.PKCS7(128).unpadder()
        return (unpad.update(padded) + unpad.finalize()).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"cannot decrypt notice: {exc}") from None


def encrypt(key: str, iv: str, text: str) -> str:
    """The inverse of decrypt (the fake server in tests uses it)."""
    pad = padding.PKCS7(128).padder()
    padded = pad.update(text.encode("utf-8")) + pad.finalize()
    enc = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).encryptor()
    return base64.b64encode(enc.update(padded) + enc.finalize()).decode("ascii")


# ------------------------------------------------------------------ execution notice (5.7)
# Three layouts are in circulation:
#   "26a": OTA ccnl_notice.py (one version), OTA legacy, kis.md 5.7 - 3 OODER_NO, 16 ODER_QTY
#   "26b": OTA ccnl_notice.py (other version, and OTA kis_auth copies) - 3 ODER_QTY,
#          16 ACNT_NO2; no original order number at all
#   "23":  python-kis (pre-2025) - as 26a up to 17, then CNTG_ISNM ... ODER_PRC last
# ODER_PRC is the last field in all of them.
NOTICE_WIDTHS = (23, 26)


@dataclass(frozen=True)
class Notice:
    layout: str
    account: str
    order_no: str
    orig_order_no: str  # "" when the layout has none (26b) or for a new order
    side: Side | None
    rctf_cls: str  # 정정구분: 0 normal, 1 revise, 2 cancel (python-kis comments)
    ord_dvsn: str
    symbol: str
    qty: int  # CNTG_YN=2: the fill's quantity; else the order's (legacy sample)
    price: int
    hhmmss: str
    refused: bool  # RFUS_YN == "1"
    is_fill: bool  # CNTG_YN == "2"
    acpt_yn: str  # 1 received, 2 confirmed, 3 canceled (IOC/FOK remainder)
    order_qty: int  # 0 when unknown
    order_price: int


def notice_layout(fields: list[str]) -> str:
    if len(fields) == 23:
        return "23"
    if len(fields) < 26:
        raise FrameError(f"execution notice with {len(fields)} fields (23 or 26 expected)")
    # 26b puts an account number (8+ digits) at 16 where 26a has the order quantity; a
    # quantity of 10,000,000 shares or more is not plausible
    f16, f3 = fields[16].strip(), fields[3].strip()
    if len(f16) >= 8 or (f16 == "" and 0 < len(f3) < 10):
        return "26b"
    return "26a"


def parse_notice(fields: list[str]) -> Notice:
    layout = notice_layout(fields)
    if layout == "26b":
        orig, order_qty = "", fields[3]
    else:
        orig, order_qty = fields[3], fields[16]
    side_code = fields[4].strip()
    side = Side.SELL if side_code == "01" else Side.BUY if side_code == "02" else None
    orig = orig.strip()
    if orig.strip("0") == "":
        orig = ""
    return Notice(
        layout=layout,
        account=fields[1].strip(),
        order_no=norm_odno(fields[2]),
        orig_order_no=norm_odno(orig),
        side=side,
        rctf_cls=fields[5].strip(),
        ord_dvsn=fields[6].strip(),
        symbol=fields[8].strip(),
        qty=to_int(fields[9], "CNTG_QTY"),
        price=to_int(fields[10], "CNTG_UNPR"),
        hhmmss=fields[11].strip(),
        refused=fields[12].strip() == "1",
        is_fill=fields[13].strip() == "2",
        acpt_yn=fields[14].strip(),
        order_qty=to_int(order_qty, "ODER_QTY") if order_qty.strip().isdigit() else 0,
        order_price=to_int(fields[-1], "ODER_PRC") if fields[-1].strip() else 0,
    )


def norm_odno(odno: str) -> str:
    """Order numbers as the order answer gives them: 10 digits, zero-padded ("0000117057");
    notices and queries may drop the padding."""
    text = odno.strip()
    return text.zfill(10) if text else ""


# ------------------------------------------------------------------ query rows (4.5, 4.6)
@dataclass(frozen=True)
class OrderRow:
    """One row of inquire-daily-ccld."""

    order_no: str
    orig_order_no: str  # set on a revise/cancel row: the order it acted on
    branch: str  # KRX_FWDG_ORD_ORGNO for a cancel: ord_gno_brno, else ord_orgno (4.5)
    day: str
    hhmmss: str
    symbol: str
    side: Side
    qty: int
    price: int
    filled_qty: int
    filled_amt: int
    avg_price: int
    remaining: int
    canceled_qty: int
    rejected_qty: int
    cancel_yn: bool
    ord_dvsn: str

    @property
    def is_amendment(self) -> bool:
        return bool(self.orig_order_no)


def parse_order_row(row: dict[str, Any]) -> OrderRow:
    side_code = field(row, "sll_buy_dvsn_cd")
    if side_code not in ("01", "02"):
        raise BadResponse("BAD_ROW", f"sll_buy_dvsn_cd {side_code!r} is neither 01 nor 02")
    orig = field(row, "orgn_odno").strip()
    if orig.strip("0") == "":
        orig = ""
    return OrderRow(
        order_no=norm_odno(field(row, "odno")),
        orig_order_no=norm_odno(orig),
        branch=(field(row, "ord_gno_brno") or field(row, "ord_orgno")).strip(),
        day=field(row, "ord_dt").strip(),
        hhmmss=field(row, "ord_tmd").strip(),
        symbol=field(row, "pdno").strip(),
        side=Side.SELL if side_code == "01" else Side.BUY,
        qty=to_int(field(row, "ord_qty"), "ord_qty"),
        price=to_int(field(row, "ord_unpr"), "ord_unpr"),
        filled_qty=to_int(field(row, "tot_ccld_qty"), "tot_ccld_qty"),
        filled_amt=to_int(field(row, "tot_ccld_amt"), "tot_ccld_amt"),
        avg_price=round_int(field(row, "avg_prvs")),
        remaining=to_int(field(row, "rmn_qty"), "rmn_qty"),
        canceled_qty=to_int(field(row, "cnc_cfrm_qty"), "cnc_cfrm_qty"),
        rejected_qty=to_int(field(row, "rjct_qty"), "rjct_qty"),
        cancel_yn=field(row, "cncl_yn").strip().upper() == "Y",
        ord_dvsn=field(row, "ord_dvsn_cd").strip(),
    )


def order_status(row: OrderRow) -> str:
    """open / filled / canceled / expired / rejected for an order row (not an amendment)."""
    if row.filled_qty >= row.qty > 0:
        return "filled"
    if row.remaining > 0:
        return "open"
    if row.rejected_qty > 0 and row.filled_qty == 0 and row.canceled_qty == 0:
        return "rejected"
    if row.ord_dvsn in {"11", "12", "13", "14", "15", "16"}:
        return "expired" if row.canceled_qty == 0 else "canceled"
    return "canceled"


def parse_balance(output1: list[dict[str, Any]], output2: Any) -> tuple[int, dict[str, int]]:
    """(cash, {symbol: shares}); output2 is a one-element list (OTA) or an object."""
    holdings: dict[str, int] = {}
    for row in output1:
        qty = to_int(field(row, "hldg_qty"), "hldg_qty")
        if qty > 0:  # sold today shows 0 until D+2 (4.6)
            symbol = field(row, "pdno").strip()
            holdings[symbol] = holdings.get(symbol, 0) + qty
    summary = output2[0] if isinstance(output2, list) and output2 else output2
    if not isinstance(summary, dict):
        raise BadResponse("BAD_ROW", "inquire-balance output2 is missing")
    return to_int(field(summary, "dnca_tot_amt"), "dnca_tot_amt"), holdings


def split_account(account: str) -> tuple[str, str]:
    """'12345678-01' or '1234567801' -> ('12345678', '01')."""
    digits = account.replace("-", "").strip()
    if len(digits) != 10 or not digits.isdigit():
        raise ValueError("KIS account must be 8 digits + 2 digits (e.g. 12345678-01)")
    return digits[:8], digits[8:]
