"""Kiwoom wire parsing: both error forms, order-type codes, values, REAL messages, market data."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from protocol.enums import OrderType, Side, TimeInForce
from services.execution.adapters.common.errors import (
    AuthError,
    BadResponse,
    BrokerError,
    RateLimited,
    Rejected,
    TokenExpired,
)
from services.execution.adapters.kiwoom import wire


# ------------------------------------------------------------------ errors (3.4, 6.2)
@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "form"),
    [
        # the official SDK's reading: the 4-digit code in return_code
        (200, {"return_code": 8005, "return_msg": "Token이 유효하지 않습니다"}, TokenExpired,
         "8005", "four_digit"),
        (200, {"return_code": "1700", "return_msg": "허용된 API 요청 개수를 초과"}, RateLimited,
         "1700", "four_digit"),
        (200, {"return_code": 8030, "return_msg": "투자구분"}, AuthError, "8030", "four_digit"),
        (200, {"return_code": 1999, "return_msg": "예기치 못한"}, BrokerError, "1999",
         "four_digit"),
        # live observations: a small category code, the 4-digit code inside return_msg
        (200, {"return_code": 3, "return_msg": "인증 실패[8005:Token이 유효하지 않습니다]"},
         TokenExpired, "8005", "bracketed"),
        (429, {"return_code": 5, "return_msg": "허용된 요청 개수 초과[1700:허용된 API]"},
         RateLimited, "1700", "bracketed"),
        # the batch-limit trap: same text as a rate limit, but [1634]: not to be retried
        (200, {"return_code": 5, "return_msg": "허용된 요청 개수를 초과하였습니다[1634]"},
         Rejected, "1634", "bracketed"),
        (200, {"return_code": 5, "return_msg": "허용된 요청 개수를 초과하였습니다[1634:종목수]"},
         Rejected, "1634", "bracketed"),
        # categories without a detail code
        (200, {"return_code": 3, "return_msg": "인증에 실패했습니다"}, TokenExpired, "RC3",
         "category"),
        (429, {}, RateLimited, "HTTP429", "http"),
        (401, {}, TokenExpired, "HTTP401", "http"),
        (500, {"return_msg": "oops"}, BrokerError, "HTTP500", "http"),
        (200, {"return_code": 2, "return_msg": "주문가능금액을 초과합니다[2000:초과]"}, Rejected,
         "2000", "bracketed"),
    ],
)  # fmt: skip
def test_error_forms(status: int, body: dict, kind: type, code: str, form: str) -> None:
    assert wire.envelope(status, body).form == form
    with pytest.raises(BrokerError) as info:
        wire.check(status, body)
    assert type(info.value) is kind
    assert info.value.code == code
    assert info.value.http_status == status


def test_success_and_no_data() -> None:
    assert wire.check(200, {"return_code": 0, "return_msg": "정상"}).form == "ok"
    assert wire.check(200, {"token": "x"}).form == "ok"  # no envelope at all
    with pytest.raises(Rejected):
        wire.check(200, {"return_code": 20, "return_msg": "조회할 자료가 없습니다"})
    assert wire.check(200, {"return_code": 20}, no_data_ok=True).return_code == 20


def test_bad_bodies() -> None:
    with pytest.raises(BadResponse):
        wire.parse_body(200, "<html>")
    with pytest.raises(BadResponse):
        wire.parse_body(200, "[1, 2]")
    with pytest.raises(BadResponse):
        wire.envelope(200, {"return_code": "abc"})
    assert wire.parse_body(200, "") == {}


def test_ws_login_code() -> None:
    msg = {"trnm": "LOGIN", "return_code": 1, "return_msg": "[CODE=8005, MESSAGE=Token이]"}
    assert wire.ws_code(msg) == "8005"
    assert wire.ws_code({"return_msg": "x"}) == ""


# ------------------------------------------------------------------ order types (4.3)
@pytest.mark.parametrize(
    ("order_type", "tif", "code"),
    [
        (OrderType.LIMIT, TimeInForce.DAY, "0"), (OrderType.MARKET, TimeInForce.DAY, "3"),
        (OrderType.CONDITIONAL, TimeInForce.DAY, "5"), (OrderType.BEST, TimeInForce.DAY, "6"),
        (OrderType.PRIORITY, TimeInForce.DAY, "7"), (OrderType.LIMIT, TimeInForce.IOC, "10"),
        (OrderType.MARKET, TimeInForce.IOC, "13"), (OrderType.BEST, TimeInForce.IOC, "16"),
        (OrderType.LIMIT, TimeInForce.FOK, "20"), (OrderType.MARKET, TimeInForce.FOK, "23"),
        (OrderType.BEST, TimeInForce.FOK, "26"),
    ],
)  # fmt: skip
def test_order_type_codes(order_type: OrderType, tif: TimeInForce, code: str) -> None:
    assert wire.trde_tp(order_type, tif) == code


def test_unsupported_order_types() -> None:
    with pytest.raises(wire.Unsupported, match="CONDITIONAL IOC"):
        wire.trde_tp(OrderType.CONDITIONAL, TimeInForce.IOC)
    with pytest.raises(wire.Unsupported, match="PRIORITY FOK"):
        wire.trde_tp(OrderType.PRIORITY, TimeInForce.FOK)


def test_order_body() -> None:
    assert wire.order_body("KRX", "005930", 10, 70000, "0") == {
        "dmst_stex_tp": "KRX", "stk_cd": "005930", "ord_qty": "10", "ord_uv": "70000",
        "trde_tp": "0", "cond_uv": "",
    }  # fmt: skip
    # market and best-price orders go without a price (the official example)
    assert wire.order_body("SOR", "005930", 1, 70000, "3")["ord_uv"] == ""
    with pytest.raises(wire.Unsupported, match="dmst_stex_tp"):
        wire.order_body("KOSPI", "005930", 1, 70000, "0")
    with pytest.raises(wire.Unsupported, match="positive price"):
        wire.order_body("KRX", "005930", 1, 0, "0")
    with pytest.raises(wire.Unsupported, match="quantity"):
        wire.order_body("KRX", "005930", 0, 70000, "0")


# ------------------------------------------------------------------ values (3.5)
def test_numbers_and_codes() -> None:
    assert wire.to_int("+74100") == 74100
    assert wire.to_int("-00000000196888") == -196888
    assert wire.to_int("000000000001") == 1
    assert wire.to_int("1,234") == 1234
    assert wire.to_int("") == 0
    assert wire.price("-20800") == 20800
    with pytest.raises(BadResponse):
        wire.to_int("12.5", "x")
    with pytest.raises(BadResponse):
        wire.to_int("abc", "x")
    assert wire.symbol("A005930") == "005930"
    assert wire.symbol("005930_NX") == "005930"
    assert wire.symbol("039490_AL") == "039490"
    assert wire.symbol("Q500001") == "500001"
    assert wire.order_no("00024") == "0000024"
    assert wire.order_no("0000139") == "0000139"
    assert wire.hhmmss("09:01:02") == "090102"
    assert wire.hhmmss("12") == ""


def test_token_expiry_is_kst() -> None:
    token, expires = wire.parse_token(
        {"expires_dt": "20251109235445", "token_type": "Bearer", "token": "abc", "return_code": 0}
    )
    assert token == "abc"
    # 23:54:45 KST is 14:54:45 UTC: read naively on a UTC host it would be 9 hours late
    assert expires == dt.datetime(2025, 11, 9, 14, 54, 45, tzinfo=dt.UTC).timestamp()
    with pytest.raises(BadResponse, match="without `token`"):
        wire.parse_token({"access_token": "abc", "expires_dt": "20251109235445"})
    with pytest.raises(BadResponse, match="expires_dt"):
        wire.parse_token({"token": "abc", "expires_dt": "2025-11-09 23:54:45"})


# ------------------------------------------------------------------ WebSocket (5)
def test_ws_messages() -> None:
    assert json.loads(wire.login_message("tok")) == {"trnm": "LOGIN", "token": "tok"}
    assert json.loads(wire.reg_message("1", [""], ["00", "04"])) == {
        "trnm": "REG", "grp_no": "1", "refresh": "1",
        "data": [{"item": [""], "type": ["00", "04"]}],
    }  # fmt: skip
    remove = json.loads(wire.reg_message("1", ["005930"], ["0B"], remove=True))
    assert remove["trnm"] == "REMOVE" and "refresh" not in remove
    assert wire.parse_ws("PING") == {"trnm": "PING"}
    assert wire.parse_ws('{"trnm":"PING"}') == {"trnm": "PING"}
    for bad in ("{not json", "[1]", '{"no": "trnm"}'):
        with pytest.raises(wire.FrameError):
            wire.parse_ws(bad)
    with pytest.raises(wire.FrameError):
        wire.real_entries({"trnm": "REAL", "data": {"type": "00"}})
    with pytest.raises(wire.FrameError):
        wire.real_entries({"trnm": "REAL", "data": [{"type": "00", "values": ["1"]}]})


FILL_00 = {
    "9201": "5012345610", "9203": "0000018", "9001": "005930", "913": "체결", "302": "삼성전자",
    "900": "10", "901": "70000", "902": "6", "903": "280000", "904": "0000000", "905": "+매수",
    "906": "보통", "907": "2", "908": "090102", "909": "1234", "910": "70000", "911": "4",
    "914": "70000", "915": "3", "2134": "1",
}  # fmt: skip


def test_order_event() -> None:
    e = wire.parse_order_event(FILL_00)
    assert (e.order_no, e.symbol, e.side, e.status) == ("0000018", "005930", Side.BUY, "체결")
    assert (e.order_qty, e.unfilled, e.filled, e.filled_amount) == (10, 6, 4, 280000)
    assert (e.unit_qty, e.unit_price, e.orig_order_no) == (3, 70000, "")
    assert e.fill_form == "911=cumulative"
    assert wire.parse_order_event({**FILL_00, "911": "3"}).fill_form == "911=this fill"
    cancel = wire.parse_order_event({**FILL_00, "905": "매수취소", "904": "0000017"})
    assert cancel.is_cancel and cancel.orig_order_no == "0000017"
    sell = wire.parse_order_event({**FILL_00, "907": "", "905": "-매도"})
    assert sell.side is Side.SELL
    with pytest.raises(wire.FrameError, match="9203"):
        wire.parse_order_event({**FILL_00, "9203": ""})
    with pytest.raises(BadResponse):
        wire.parse_order_event({**FILL_00, "900": "ten"})


def test_balance_event() -> None:
    b = wire.parse_balance_event({"9001": "A005930", "930": "12", "931": "70100", "933": "12"})
    assert (b.symbol, b.qty, b.avg_price, b.orderable) == ("005930", 12, 70100, 12)
    with pytest.raises(wire.FrameError):
        wire.parse_balance_event({"930": "12"})


# ------------------------------------------------------------------ market data (5.2, 5.3)
def test_trade_from_0b() -> None:
    values = {"20": "090102", "10": "-74100", "15": "-25", "13": "123456", "14": "9000"}
    t = wire.trade_from_0b("005930_NX", values, "20260105", stream=7, seq=3)
    assert (t.symbol, t.price, t.qty, t.aggressor, t.cum_volume) == (
        "005930", 74100, 25, Side.SELL, 123456,
    )  # fmt: skip
    assert t.exch_ns == dt.datetime(2026, 1, 5, 0, 1, 2, tzinfo=dt.UTC).timestamp() * 1e9
    assert (t.stream, t.seq) == (7, 3)
    assert wire.trade_from_0b("005930", {**values, "15": "+5"}, "20260105", 1, 1).aggressor is (
        Side.BUY
    )
    with pytest.raises(wire.FrameError, match="price or quantity"):
        wire.trade_from_0b("005930", {**values, "15": ""}, "20260105", 1, 1)
    with pytest.raises(wire.FrameError, match="HHMMSS"):
        wire.trade_from_0b("005930", {**values, "20": ""}, "20260105", 1, 1)


def test_book_from_0d() -> None:
    values = {"21": "090103"}
    for level in range(10):
        values[str(41 + level)] = f"+{70100 + level * 100}"
        values[str(51 + level)] = f"-{70000 - level * 100}"
        values[str(61 + level)] = str(10 + level)
        values[str(71 + level)] = str(20 + level)
    values["50"] = "0"  # an empty tenth ask level is left out
    b = wire.book_from_0d("005930", values, "20260105", stream=1, seq=9)
    assert b.asks[0] == (70100, 10) and b.bids[0] == (70000, 20)
    assert len(b.asks) == 9 and len(b.bids) == 10
    assert b.bids[-1] == (69100, 29)
    assert b.exch_ns == dt.datetime(2026, 1, 5, 0, 1, 3, tzinfo=dt.UTC).timestamp() * 1e9


# ------------------------------------------------------------------ query rows (4.4)
def test_query_rows() -> None:
    open_row = wire.parse_open_row({
        "ord_no": "0000139", "stk_cd": "005930", "ord_qty": "000000000010",
        "ord_pric": "000000070000", "oso_qty": "000000000004", "orig_ord_no": "0000000",
        "io_tp_nm": "+매수", "tm": "090102", "ord_stt": "접수", "cntr_qty": "1",
        "cntr_tot_amt": "420000",
    })  # fmt: skip
    assert (open_row.filled, open_row.unfilled, open_row.side) == (6, 4, Side.BUY)
    assert open_row.filled_amount == 420000
    fill_row = wire.parse_fill_row({
        "ord_no": "0000140", "stk_cd": "005930", "ord_qty": "10", "ord_pric": "70000",
        "cntr_pric": "69950", "cntr_qty": "10", "oso_qty": "0", "io_tp_nm": "-매도",
        "ord_tm": "09:05:00", "orig_ord_no": "0000139",
    })  # fmt: skip
    assert (fill_row.filled, fill_row.avg_fill_price, fill_row.side) == (10, 69950, Side.SELL)
    assert (fill_row.orig_order_no, fill_row.hhmmss) == ("0000139", "090500")
    with pytest.raises(BadResponse, match="io_tp_nm"):
        wire.parse_open_row({"ord_no": "1", "io_tp_nm": "?"})
    holdings = wire.parse_holdings([
        {"stk_cd": "A005930", "rmnd_qty": "000000000000012"},
        {"stk_cd": "A000660", "rmnd_qty": "0"},
    ])  # fmt: skip
    assert holdings == {"005930": 12}
    deposit = wire.parse_deposit(
        {"entr": "000000001000000", "d2_entra": "900", "ord_alow_amt": "5"}
    )
    assert (deposit.cash, deposit.d2, deposit.orderable) == (1_000_000, 900, 5)
    with pytest.raises(BadResponse):
        wire.parse_deposit({})
