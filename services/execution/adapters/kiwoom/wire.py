"""The Kiwoom protocol as data: paths and api-ids, order-type codes, the error envelope in
both forms met, WebSocket messages, REAL values (00 orders, 04 balance, 0B trades, 0D books)
and query rows. Pure functions; section numbers refer to shared/brokers/kiwoom.md.

Every value arrives as a string: prices and changes carry a sign for the direction against
the previous close ("+74100"), account TRs zero-pad ("-00000000196888"), balance codes carry
a one-letter prefix ("A005930") and real-time items an exchange suffix ("005930_NX") (3.5).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from protocol.enums import OrderType, Side, TimeInForce
from protocol.messages import Book, Trade
from services.execution.adapters.common.errors import (
    AuthError,
    BadResponse,
    BrokerError,
    RateLimited,
    Rejected,
    TokenExpired,
)
from services.execution.adapters.common.kst import KST, kst_ns

Mode = Literal["mock", "live"]

# ------------------------------------------------------------------ paths and api-ids (4.1)
TOKEN_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"
ORDER_PATH = "/api/dostk/ordr"
ACCOUNT_PATH = "/api/dostk/acnt"

TOKEN_ID = "au10001"
REVOKE_ID = "au10002"
BUY_ID = "kt10000"
SELL_ID = "kt10001"
MODIFY_ID = "kt10002"
CANCEL_ID = "kt10003"
OPEN_ORDERS_ID = "ka10075"  # 미체결요청, rows under "oso"
FILLS_ID = "ka10076"  # 체결요청, rows under "cntr"
BALANCE_ID = "kt00018"  # 계좌평가잔고내역요청, rows under "acnt_evlt_remn_indv_tot"
DEPOSIT_ID = "kt00001"  # 예수금상세현황요청

EXCHANGES = ("KRX", "NXT", "SOR")  # dmst_stex_tp

# ------------------------------------------------------------------ order types (4.3)
TRDE_TP: dict[tuple[OrderType, TimeInForce], str] = {
    (OrderType.LIMIT, TimeInForce.DAY): "0",  # 보통
    (OrderType.MARKET, TimeInForce.DAY): "3",  # 시장가
    (OrderType.CONDITIONAL, TimeInForce.DAY): "5",  # 조건부지정가
    (OrderType.BEST, TimeInForce.DAY): "6",  # 최유리지정가
    (OrderType.PRIORITY, TimeInForce.DAY): "7",  # 최우선지정가
    (OrderType.LIMIT, TimeInForce.IOC): "10",
    (OrderType.MARKET, TimeInForce.IOC): "13",
    (OrderType.BEST, TimeInForce.IOC): "16",
    (OrderType.LIMIT, TimeInForce.FOK): "20",
    (OrderType.MARKET, TimeInForce.FOK): "23",
    (OrderType.BEST, TimeInForce.FOK): "26",
}
PRICED_TRDE_TP = {"0", "5", "10", "20"}  # the others go with ord_uv "" (the official example)
IOC_FOK_TRDE_TP = {"10", "13", "16", "20", "23", "26"}


class Unsupported(ValueError):
    """An order Kiwoom cannot take as asked (refused before sending)."""


def trde_tp(order_type: OrderType, tif: TimeInForce) -> str:
    code = TRDE_TP.get((order_type, tif))
    if code is None:
        raise Unsupported(f"Kiwoom has no order type for {order_type.value} {tif.value}")
    return code


def order_body(exchange: str, symbol: str, qty: int, price: int, code: str) -> dict[str, str]:
    """The kt10000/kt10001 body; every value a string."""
    if exchange not in EXCHANGES:
        raise Unsupported(f"dmst_stex_tp {exchange!r} is not one of {EXCHANGES}")
    if qty <= 0:
        raise Unsupported(f"order quantity must be positive, got {qty}")
    if code in PRICED_TRDE_TP and price <= 0:
        raise Unsupported(f"trde_tp {code} needs a positive price, got {price}")
    return {
        "dmst_stex_tp": exchange,
        "stk_cd": symbol,
        "ord_qty": str(qty),
        "ord_uv": str(price) if code in PRICED_TRDE_TP else "",
        "trde_tp": code,
        "cond_uv": "",
    }


# ------------------------------------------------------------------ values (3.5)
def to_int(value: Any, what: str = "value") -> int:
    """A Kiwoom number ("+74100", "-00000000196888", "000000000001", "1,234", "") as a signed
    int; a fraction is an error (prices and quantities are whole)."""
    if isinstance(value, bool):
        raise BadResponse("BAD_NUMBER", f"{what}: {value!r} is not a number")
    if isinstance(value, int):
        return value
    text = str(value if value is not None else "").strip().replace(",", "")
    if text in ("", "+", "-"):
        return 0
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise BadResponse("BAD_NUMBER", f"{what}: {text!r} is not a number") from None
    if number != number.to_integral_value():
        raise BadResponse("BAD_NUMBER", f"{what}: {text!r} is not a whole number")
    return int(number)


def price(value: Any, what: str = "price") -> int:
    """A price: the sign only says up or down against the previous close (3.5)."""
    return abs(to_int(value, what))


def round_int(value: Any, what: str = "value") -> int:
    text = str(value if value is not None else "").strip().replace(",", "") or "0"
    try:
        return abs(int(Decimal(text).quantize(Decimal(1), rounding=ROUND_HALF_UP)))
    except InvalidOperation:
        raise BadResponse("BAD_NUMBER", f"{what}: {text!r} is not a number") from None


def symbol(code: Any) -> str:
    """A 6-digit code from "A005930" (balance TRs), "005930_NX"/"005930_AL" (real-time items)
    or "005930"."""
    text = str(code or "").strip()
    text = text.split("_", 1)[0]
    if len(text) == 7 and text[0] in "AJQ" and text[1:].isdigit():
        text = text[1:]
    return text


def order_no(value: Any) -> str:
    """Order numbers are 7 digits ("0000139"); one official example shows "00024" (4.3), so
    shorter all-digit numbers are padded to 7 and the REST answer, notices and queries agree."""
    text = str(value or "").strip()
    if text.isdigit() and len(text) < 7:
        return text.zfill(7)
    return text


def no_order(value: str) -> bool:
    """orig_ord_no / 904 without an original order ("0000000" or "")."""
    return value.strip("0 ") == ""


def hhmmss(value: Any) -> str:
    """HHMMSS from "HHmmss", "HH:MM:SS" or "HHmmssfff"; "" if it has too few digits."""
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())
    return digits[:6] if len(digits) >= 6 else ""


def side_from_text(text: str) -> Side | None:
    """ "+매수", "-매도", "매수정정", "+매수신용" ... -> the side; None if neither."""
    if "매도" in text:
        return Side.SELL
    if "매수" in text:
        return Side.BUY
    return None


# ------------------------------------------------------------------ errors (3.4, 6.2)
RATE_CODES = {"1700", "1701", "1702", "1687"}  # 1687 (recursive calls) throttles too (6.2)
TOKEN_CODES = {"8005", "8031", "8103"}  # the official SDK re-issues once on these (2.3)
AUTH_CODES = {
    "1513", "1514", "1515", "1516", "8001", "8002", "8003", "8006", "8009", "8010", "8011",
    "8012", "8015", "8016", "8020", "8030", "8040", "8050", "8104", "8200",
}  # fmt: skip
CATEGORY_AUTH = 3  # small return_code forms met live (3.4)
CATEGORY_RATE = 5
CATEGORY_NO_DATA = 20
_BRACKET = re.compile(r"\[(\d{4})\s*[:\]]")
_CODE_EQ = re.compile(r"CODE\s*=\s*(\d{4})")

Form = Literal["ok", "four_digit", "bracketed", "category", "http", "none"]


@dataclass(frozen=True)
class Envelope:
    """What an answer says about itself: return_code, the 4-digit detail code wherever it was
    found, and which of the forms it came in (logged once per form: 3.4 is UNCERTAIN)."""

    return_code: int
    detail: str  # "8005", "1700", ... or "" when the answer carries none
    message: str
    form: Form


def envelope(http_status: int, body: dict[str, Any]) -> Envelope:
    raw = body.get("return_code")
    message = str(body.get("return_msg", "") or "")
    if raw is None or str(raw).strip() == "":
        rc = 0 if http_status < 400 else -1
    else:
        try:
            rc = int(str(raw).strip())
        except ValueError:
            raise BadResponse(
                "BAD_ENVELOPE", f"return_code {raw!r} is not a number", http_status
            ) from None
    found = _BRACKET.search(message) or _CODE_EQ.search(message)
    if rc >= 1000:
        return Envelope(rc, str(rc), message, "four_digit")
    if found:
        return Envelope(rc, found.group(1), message, "bracketed")
    if rc == 0 and http_status < 400:
        return Envelope(0, "", message, "ok")
    if rc > 0:
        return Envelope(rc, "", message, "category")
    if http_status >= 400:
        return Envelope(rc, "", message, "http")
    return Envelope(rc, "", message, "none")


def error_for(env: Envelope, http_status: int) -> BrokerError:
    """The typed error of a failed answer. The 4-digit detail decides when there is one (a
    category-5 answer with [1634] is a batch limit, not a rate limit: 6.1)."""
    code = env.detail or (f"RC{env.return_code}" if env.return_code > 0 else f"HTTP{http_status}")
    message = env.message or f"HTTP {http_status}"
    if env.detail:
        if env.detail in RATE_CODES:
            return RateLimited(code, message, http_status)
        if env.detail in TOKEN_CODES:
            return TokenExpired(code, message, http_status)
        if env.detail in AUTH_CODES:
            return AuthError(code, message, http_status)
        if env.detail == "1999":
            return BrokerError(code, message, http_status)  # server fault: outcome unknown
        return Rejected(code, message, http_status)
    if http_status == 429 or env.return_code == CATEGORY_RATE:
        return RateLimited(code, message, http_status)
    if http_status == 401 or env.return_code == CATEGORY_AUTH:
        return TokenExpired(code, message, http_status)
    if http_status >= 500 or (http_status >= 400 and env.return_code <= 0):
        return BrokerError(code, message, http_status)
    return Rejected(code, message, http_status)


def parse_body(http_status: int, text: str) -> dict[str, Any]:
    """The JSON body whatever the HTTP status (429 and auth errors come with a body)."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        raise BadResponse(
            f"HTTP{http_status}", f"not JSON (HTTP {http_status}): {text[:200]!r}", http_status
        ) from None
    if not isinstance(body, dict):
        raise BadResponse(f"HTTP{http_status}", "JSON body is not an object", http_status)
    return body


def check(http_status: int, body: dict[str, Any], no_data_ok: bool = False) -> Envelope:
    """Raise the typed error an answer carries, else return its envelope. An HTTP 200 can
    still be a failure: return_code decides (3.3). no_data_ok: a query's return_code 20
    ("no data", [KR]) is an empty answer."""
    env = envelope(http_status, body)
    if env.return_code == 0 and http_status < 400:
        return env
    if no_data_ok and env.return_code == CATEGORY_NO_DATA and not env.detail:
        return env
    raise error_for(env, http_status)


# ------------------------------------------------------------------ token (2.1)
def parse_token(body: dict[str, Any]) -> tuple[str, float]:
    """au10001 answer -> (token, expiry as epoch seconds). The field is `token`, not
    access_token; expires_dt is KST wall-clock YYYYMMDDHHMMSS (2.3)."""
    token = str(body.get("token", "") or "").strip()
    if not token:
        raise BadResponse("NO_TOKEN", "token answer without `token`")
    return token, parse_expires_dt(str(body.get("expires_dt", "")))


def parse_expires_dt(text: str) -> float:
    t = text.strip()
    try:
        stamp = dt.datetime.strptime(t, "%Y%m%d%H%M%S").replace(tzinfo=KST)
    except ValueError:
        raise BadResponse("BAD_EXPIRY", f"expires_dt {text!r} is not YYYYMMDDHHMMSS") from None
    return stamp.timestamp()


# ------------------------------------------------------------------ WebSocket (5)
ACCOUNT_TYPES = ("00", "04")  # order events and balance, for the whole account (5.1)


def login_message(token: str) -> str:
    return json.dumps({"trnm": "LOGIN", "token": token})  # the raw token, no "Bearer " (5.2)


def reg_message(
    grp_no: str, items: list[str], types: list[str], remove: bool = False, refresh: str = "1"
) -> str:
    msg: dict[str, Any] = {
        "trnm": "REMOVE" if remove else "REG",
        "grp_no": grp_no,
        "data": [{"item": items, "type": types}],
    }
    if not remove:
        msg["refresh"] = refresh
    return json.dumps(msg, ensure_ascii=False)


class FrameError(ValueError):
    pass


def parse_ws(text: str) -> dict[str, Any]:
    """A WebSocket text frame as a dict with `trnm`; the bare string PING is accepted
    ([OFF-SDK])."""
    if text.strip() == "PING":
        return {"trnm": "PING"}
    try:
        msg = json.loads(text)
    except ValueError:
        raise FrameError(f"not JSON: {text[:80]!r}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("trnm"), str):
        raise FrameError(f"no trnm: {text[:80]!r}")
    return msg


def ws_code(msg: dict[str, Any]) -> str:
    """The 4-digit code in a LOGIN failure ("[CODE=8005, MESSAGE=...]"), else ""."""
    found = _CODE_EQ.search(str(msg.get("return_msg", ""))) or _BRACKET.search(
        str(msg.get("return_msg", ""))
    )
    return found.group(1) if found else ""


@dataclass(frozen=True)
class Real:
    type: str
    item: str
    values: dict[str, str]


def real_entries(msg: dict[str, Any]) -> list[Real]:
    """The entries of a REAL message; `values` is a dict keyed by FID (5)."""
    data = msg.get("data")
    if not isinstance(data, list):
        raise FrameError("REAL without a data list")
    out = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
            raise FrameError("REAL entry without a values object")
        values = {str(k): "" if v is None else str(v) for k, v in entry["values"].items()}
        out.append(Real(str(entry.get("type", "")), str(entry.get("item", "")), values))
    return out


# ------------------------------------------------------------------ 00 주문체결 (5.4)
@dataclass(frozen=True)
class OrderEvent:
    account: str
    order_no: str
    orig_order_no: str  # "" for a new order
    symbol: str
    status: str  # 913: 접수, 체결, 확인, 취소, 거부
    kind: str  # 905: +매수, -매도, 매수정정, 매수취소, ...
    trade_type: str  # 906: 보통, 시장가, ...(IOC), ...
    side: Side | None
    order_qty: int  # 900
    order_price: int  # 901
    unfilled: int  # 902 미체결수량
    filled_amount: int  # 903 체결누계금액
    hhmmss: str  # 908
    fill_no: str  # 909
    fill_price: int  # 910
    fill_qty: int  # 911 (cumulative or this fill's: UNCERTAIN, 5.4)
    unit_price: int  # 914
    unit_qty: int  # 915
    reject_reason: str  # 919
    exchange: str  # 2134: 0 통합, 1 KRX, 2 NXT

    @property
    def filled(self) -> int:
        """Cumulative filled quantity, from 900 - 902: it needs neither reading of 911."""
        return max(0, self.order_qty - self.unfilled)

    @property
    def is_cancel(self) -> bool:
        return "취소" in self.kind

    @property
    def is_modify(self) -> bool:
        return "정정" in self.kind

    @property
    def fill_form(self) -> str:
        """Which reading of 911/915 this event fits: "911=cumulative", "911=this fill" (the
        same when both hold), "" when it shows nothing."""
        if self.status != "체결" or self.fill_qty <= 0:
            return ""
        if self.fill_qty == self.filled and self.fill_qty != self.unit_qty:
            return "911=cumulative"
        if self.fill_qty == self.unit_qty and self.fill_qty != self.filled:
            return "911=this fill"
        return ""


def parse_order_event(v: dict[str, str]) -> OrderEvent:
    order = order_no(v.get("9203", ""))
    if not order:
        raise FrameError("00 without an order number (9203)")
    orig = v.get("904", "").strip()
    kind = v.get("905", "").strip()
    side_code = v.get("907", "").strip()
    side = Side.SELL if side_code == "1" else Side.BUY if side_code == "2" else None
    return OrderEvent(
        account=v.get("9201", "").strip(),
        order_no=order,
        orig_order_no="" if no_order(orig) else order_no(orig),
        symbol=symbol(v.get("9001", "")),
        status=v.get("913", "").strip(),
        kind=kind,
        trade_type=v.get("906", "").strip(),
        side=side or side_from_text(kind),
        order_qty=abs(to_int(v.get("900"), "900")),
        order_price=price(v.get("901"), "901"),
        unfilled=abs(to_int(v.get("902"), "902")),
        filled_amount=abs(to_int(v.get("903"), "903")),
        hhmmss=hhmmss(v.get("908", "")),
        fill_no=v.get("909", "").strip(),
        fill_price=price(v.get("910"), "910"),
        fill_qty=abs(to_int(v.get("911"), "911")),
        unit_price=price(v.get("914"), "914"),
        unit_qty=abs(to_int(v.get("915"), "915")),
        reject_reason=v.get("919", "").strip(),
        exchange=v.get("2134", "").strip(),
    )


# ------------------------------------------------------------------ 04 잔고 (5.5)
@dataclass(frozen=True)
class BalanceEvent:
    symbol: str
    qty: int  # 930 보유수량
    avg_price: int  # 931 매입단가
    orderable: int  # 933 주문가능수량


def parse_balance_event(v: dict[str, str]) -> BalanceEvent:
    code = symbol(v.get("9001", ""))
    if not code:
        raise FrameError("04 without a stock code (9001)")
    return BalanceEvent(
        code,
        abs(to_int(v.get("930"), "930")),
        price(v.get("931"), "931"),
        abs(to_int(v.get("933"), "933")),
    )


# ------------------------------------------------------------------ market data (5.2, 5.3)
def exch_ns(day: str, value: str, what: str) -> int:
    t = hhmmss(value)
    if not t:
        raise FrameError(f"{what} {value!r} is not HHMMSS")
    return kst_ns(day, t)


def trade_from_0b(item: str, v: dict[str, str], day: str, stream: int, seq: int) -> Trade:
    """0B 주식체결 -> Trade. 15 is this trade's quantity, signed by side: "+" a buy-side fill
    (buyer aggressed), "-" a sell-side fill; 13 the day's volume (5.2). day: KST YYYYMMDD."""
    raw_qty = v.get("15", "").strip()
    qty = abs(to_int(raw_qty, "15"))
    px = price(v.get("10"), "10")
    if qty <= 0 or px <= 0:
        raise FrameError(f"0B {item} without a price or quantity")
    aggressor = {"+": Side.BUY, "-": Side.SELL}.get(raw_qty[:1])
    return Trade(
        stream=stream,
        seq=seq,
        symbol=symbol(item),
        exch_ns=exch_ns(day, v.get("20", ""), "0B time (20)"),
        price=px,
        qty=qty,
        aggressor=aggressor,
        cum_volume=abs(to_int(v.get("13"), "13")),
    )


ASK_PRICE_FIDS = range(41, 51)
BID_PRICE_FIDS = range(51, 61)
ASK_QTY_FIDS = range(61, 71)
BID_QTY_FIDS = range(71, 81)


def book_from_0d(item: str, v: dict[str, str], day: str, stream: int, seq: int) -> Book:
    """0D 주식호가잔량 -> Book: asks 41-50 with quantities 61-70, bids 51-60 with 71-80, best
    first; empty levels (price 0) left out (5.3)."""

    def side(prices: range, qtys: range) -> list[tuple[int, int]]:
        levels = []
        for p_fid, q_fid in zip(prices, qtys, strict=True):
            px = price(v.get(str(p_fid)), str(p_fid))
            if px > 0:
                levels.append((px, abs(to_int(v.get(str(q_fid)), str(q_fid)))))
        return levels

    return Book(
        stream=stream,
        seq=seq,
        symbol=symbol(item),
        exch_ns=exch_ns(day, v.get("21", ""), "0D time (21)"),
        bids=side(BID_PRICE_FIDS, BID_QTY_FIDS),
        asks=side(ASK_PRICE_FIDS, ASK_QTY_FIDS),
    )


# ------------------------------------------------------------------ query rows (4.4)
@dataclass(frozen=True)
class OrderRow:
    """A row of ka10075 (open) or ka10076 (filled): one order with its running totals."""

    order_no: str
    orig_order_no: str
    symbol: str
    side: Side
    kind: str  # io_tp_nm
    qty: int
    price: int
    filled: int
    avg_fill_price: int  # ka10076 cntr_pric; 0 when unknown
    filled_amount: int  # ka10075 cntr_tot_amt (체결누계금액); 0 when unknown
    unfilled: int
    status: str  # ord_stt text
    trade_type: str  # trde_tp text (시장가, 보통, ...)
    hhmmss: str

    @property
    def is_cancel(self) -> bool:
        return "취소" in self.kind


def _row_side(row: dict[str, Any], what: str) -> tuple[Side, str]:
    kind = str(row.get("io_tp_nm", "")).strip()
    side = side_from_text(kind)
    if side is None:
        raise BadResponse("BAD_ROW", f"{what} io_tp_nm {kind!r} names no side")
    return side, kind


def parse_open_row(row: dict[str, Any]) -> OrderRow:
    """ka10075 `oso` row. Filled = ord_qty - oso_qty (cntr_qty may be the last fill only)."""
    side, kind = _row_side(row, "ka10075")
    qty = abs(to_int(row.get("ord_qty"), "ord_qty"))
    unfilled = abs(to_int(row.get("oso_qty"), "oso_qty"))
    orig = str(row.get("orig_ord_no", ""))
    return OrderRow(
        order_no=order_no(row.get("ord_no")),
        orig_order_no="" if no_order(orig) else order_no(orig),
        symbol=symbol(row.get("stk_cd")),
        side=side,
        kind=kind,
        qty=qty,
        price=price(row.get("ord_pric"), "ord_pric"),
        filled=max(0, qty - unfilled),
        avg_fill_price=0,
        filled_amount=abs(to_int(row.get("cntr_tot_amt"), "cntr_tot_amt")),
        unfilled=unfilled,
        status=str(row.get("ord_stt", "")).strip(),
        trade_type=str(row.get("trde_tp", "")).strip(),
        hhmmss=hhmmss(row.get("tm", "")),
    )


def parse_fill_row(row: dict[str, Any]) -> OrderRow:
    """ka10076 `cntr` row: the order's filled quantity (cntr_qty) at cntr_pric, taken as
    the average fill price (UNCERTAIN: docs/brokers/kiwoom.md)."""
    side, kind = _row_side(row, "ka10076")
    orig = str(row.get("orig_ord_no", ""))
    return OrderRow(
        order_no=order_no(row.get("ord_no")),
        orig_order_no="" if no_order(orig) else order_no(orig),
        symbol=symbol(row.get("stk_cd")),
        side=side,
        kind=kind,
        qty=abs(to_int(row.get("ord_qty"), "ord_qty")),
        price=price(row.get("ord_pric"), "ord_pric"),
        filled=abs(to_int(row.get("cntr_qty"), "cntr_qty")),
        avg_fill_price=price(row.get("cntr_pric"), "cntr_pric"),
        filled_amount=0,
        unfilled=abs(to_int(row.get("oso_qty"), "oso_qty")),
        status=str(row.get("ord_stt", "")).strip(),
        trade_type=str(row.get("trde_tp", "")).strip(),
        hhmmss=hhmmss(row.get("ord_tm", "")),
    )


def parse_holdings(rows: list[dict[str, Any]]) -> dict[str, int]:
    """kt00018 acnt_evlt_remn_indv_tot -> {symbol: shares}; codes lose their A prefix."""
    out: dict[str, int] = {}
    for row in rows:
        qty = abs(to_int(row.get("rmnd_qty"), "rmnd_qty"))
        if qty > 0:
            code = symbol(row.get("stk_cd"))
            out[code] = out.get(code, 0) + qty
    return out


@dataclass(frozen=True)
class Deposit:
    cash: int  # entr 예수금
    d2: int  # d2_entra
    orderable: int  # ord_alow_amt 주문가능금액


def parse_deposit(body: dict[str, Any]) -> Deposit:
    if "entr" not in body:
        raise BadResponse("BAD_ROW", "kt00001 answer without entr")
    return Deposit(
        to_int(body.get("entr"), "entr"),
        to_int(body.get("d2_entra"), "d2_entra"),
        to_int(body.get("ord_alow_amt"), "ord_alow_amt"),
    )
