"""The KIS protocol as data: envelope, numbers, frames, notices (every layout), rows."""

from __future__ import annotations

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
    TokenThrottled,
)
from services.execution.adapters.kis import wire
from tests.brokers.kis_notices import LAYOUTS

KEY = "k" * 16 + "K" * 16  # 32 chars -> AES-256
IV = "i" * 16


# ------------------------------------------------------------------ envelope
@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (500, {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 초과"}, RateLimited, "EGW00201"),
        (500, {"rt_cd": "1", "msg_cd": "EGW00215", "msg1": "원장"}, RateLimited, "EGW00215"),
        (500, {"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "만료"}, TokenExpired, "EGW00123"),
        (403, {"error_code": "EGW00133", "error_description": "1분"}, TokenThrottled, "EGW00133"),
        (500, {"rt_cd": "1", "msg_cd": "EGW02004", "msg1": "실전"}, AuthError, "EGW02004"),
        (500, {"rt_cd": "1", "msg_cd": "", "msg1": "모의투자 TR 이 아닙니다."}, AuthError, ""),
        (200, {"rt_cd": "7", "msg_cd": "APBK0919", "msg1": "초과  "}, Rejected, "APBK0919"),
        (500, {"rt_cd": "1", "msg_cd": "EGW00301", "msg1": "직전"}, BrokerError, "EGW00301"),
        (502, {"foo": 1}, BrokerError, "HTTP502"),
    ],
)  # fmt: skip
def test_envelope_to_typed_errors(status: int, body: dict, error: type, code: str) -> None:
    with pytest.raises(error) as info:
        wire.check_envelope(status, body)
    assert type(info.value) is error
    assert info.value.code == code
    assert info.value.http_status == status


def test_envelope_success_and_message_is_stripped() -> None:
    ok = {"rt_cd": "0", "msg_cd": "APBK0013", "msg1": "주문 전송 완료 되었습니다.", "output": {}}
    assert wire.check_envelope(200, ok) is ok
    assert wire.check_envelope(200, {"access_token": "x"}) == {"access_token": "x"}
    with pytest.raises(Rejected) as info:
        wire.check_envelope(200, {"rt_cd": "1", "msg_cd": "X", "msg1": "trailing   "})
    assert info.value.message == "trailing"


def test_rejected_refused_codes_are_retryable_flags() -> None:
    assert RateLimited.retryable and TokenExpired.retryable and not Rejected.retryable


def test_body_that_is_not_json() -> None:
    with pytest.raises(BadResponse, match="not JSON"):
        wire.parse_body(502, "<html>bad gateway</html>")
    with pytest.raises(BadResponse, match="not an object"):
        wire.parse_body(200, "[1, 2]")
    assert wire.parse_body(200, "") == {}


# ------------------------------------------------------------------ numbers, codes
def test_to_int() -> None:
    assert wire.to_int("70000") == 70000
    assert wire.to_int(" 70,000.00 ") == 70000
    assert wire.to_int("") == 0
    with pytest.raises(BadResponse, match="whole"):
        wire.to_int("70000.5", "ORD_UNPR")
    with pytest.raises(BadResponse, match="not a number"):
        wire.to_int("abc")
    assert wire.round_int("70123.50") == 70124
    assert wire.round_int("70123.49") == 70123


def test_order_division() -> None:
    assert wire.ord_dvsn(OrderType.LIMIT, TimeInForce.DAY, "paper") == "00"
    assert wire.ord_dvsn(OrderType.MARKET, TimeInForce.DAY, "live") == "01"
    assert wire.ord_dvsn(OrderType.LIMIT, TimeInForce.IOC, "live") == "11"
    assert wire.ord_dvsn(OrderType.MARKET, TimeInForce.FOK, "live") == "14"
    with pytest.raises(wire.Unsupported, match="paper"):
        wire.ord_dvsn(OrderType.LIMIT, TimeInForce.IOC, "paper")
    with pytest.raises(wire.Unsupported, match="no order division"):
        wire.ord_dvsn(OrderType.PRIORITY, TimeInForce.FOK, "live")


def test_tr_ids_live_and_paper() -> None:
    assert wire.tr_id("buy", "live") == "TTTC0012U"
    assert wire.tr_id("sell", "paper") == "VTTC0011U"
    assert wire.tr_id("rvsecncl", "paper") == "VTTC0013U"
    assert wire.tr_id("daily_ccld", "live") == "TTTC0081R"
    with pytest.raises(ValueError, match="paper"):
        wire.tr_id("psbl_rvsecncl", "paper")


def test_account_and_order_numbers() -> None:
    assert wire.split_account("12345678-01") == ("12345678", "01")
    assert wire.split_account("1234567801") == ("12345678", "01")
    with pytest.raises(ValueError, match="8 digits"):
        wire.split_account("1234-5678")
    assert wire.norm_odno("117057") == "0000117057"
    assert wire.norm_odno(" 0000117057") == "0000117057"
    assert wire.norm_odno("") == ""


# ------------------------------------------------------------------ frames
def test_data_frame_and_records() -> None:
    frame = wire.parse_frame("0|H0STCNT0|002|005930^1^2^000660^3^4")
    assert isinstance(frame, wire.Data)
    assert (frame.encrypted, frame.tr_id, frame.count) == (False, "H0STCNT0", 2)
    assert wire.records(frame.payload, frame.count) == [["005930", "1", "2"], ["000660", "3", "4"]]
    with pytest.raises(wire.FrameError):
        wire.records("a^b^c", 2)


def test_control_frames() -> None:
    sub = wire.parse_frame(
        json.dumps(
            {
                "header": {"tr_id": "H0STCNI0", "tr_key": "me", "encrypt": "N"},
                "body": {"rt_cd": "0", "msg_cd": "OPSP0000", "msg1": "SUBSCRIBE SUCCESS",
                         "output": {"iv": IV, "key": KEY}},
            }
        )
    )  # fmt: skip
    assert isinstance(sub, wire.Control)
    assert (sub.tr_id, sub.rt_cd, sub.key, sub.iv) == ("H0STCNI0", "0", KEY, IV)
    ping = wire.parse_frame('{"header":{"tr_id":"PINGPONG","datetime":"20261125101010"}}')
    assert isinstance(ping, wire.Control) and ping.tr_id == "PINGPONG" and ping.key == ""


@pytest.mark.parametrize("text", ["1|H0STCNI0|001", "0|H0STCNT0|x|a^b", "{not json", "[1]", "?"])
def test_malformed_frames(text: str) -> None:
    with pytest.raises(wire.FrameError):
        wire.parse_frame(text)


def test_subscribe_message() -> None:
    msg = json.loads(wire.subscribe_message("APPROVAL", "H0STCNI9", "htsid"))
    assert msg["header"] == {
        "approval_key": "APPROVAL", "custtype": "P", "tr_type": "1", "content-type": "utf-8",
    }  # fmt: skip
    assert msg["body"]["input"] == {"tr_id": "H0STCNI9", "tr_key": "htsid"}
    assert (
        json.loads(wire.subscribe_message("A", "H0STCNI9", "x", False))["header"]["tr_type"] == "2"
    )


def test_decrypt_roundtrip_and_errors() -> None:
    text = "고객^12345678^0000117057"
    assert wire.decrypt(KEY, IV, wire.encrypt(KEY, IV, text)) == text
    with pytest.raises(wire.FrameError):
        wire.decrypt("x" * 32, IV, wire.encrypt(KEY, IV, text))  # wrong key: bad padding
    with pytest.raises(wire.FrameError):
        wire.decrypt(KEY, IV, "bm90IGEgYmxvY2s=")  # not a whole block


# ------------------------------------------------------------------ notices
BASE = {
    "CUST_ID": "me", "ACNT_NO": "5001234501", "ODER_NO": "0000117057", "OODER_NO": "",
    "SELN_BYOV_CLS": "02", "RCTF_CLS": "0", "ODER_KIND": "00", "ODER_COND": "0",
    "STCK_SHRN_ISCD": "005930", "CNTG_QTY": "4", "CNTG_UNPR": "70000",
    "STCK_CNTG_HOUR": "101500", "RFUS_YN": "0", "CNTG_YN": "2", "ACPT_YN": "2",
    "BRNC_NO": "06010", "ODER_QTY": "10", "ACNT_NAME": "홍길동", "ORD_COND_PRC": "0",
    "ORD_EXG_GB": "1", "POPUP_YN": "N", "FILLER": "", "CRDT_CLS": "10", "CRDT_LOAN_DATE": "",
    "CNTG_ISNM40": "삼성전자", "ODER_PRC": "70000", "ACNT_NO2": "5001234501", "CNTG_ISNM": "삼성",
}  # fmt: skip
LAYOUT_26A, LAYOUT_26B, LAYOUT_23 = LAYOUTS["26a"], LAYOUTS["26b"], LAYOUTS["23"]


def fields(layout: list[str], **over: str) -> list[str]:
    values = dict(BASE, **over)
    return [values[name] for name in layout]


@pytest.mark.parametrize(
    ("layout", "name"), [(LAYOUT_26A, "26a"), (LAYOUT_26B, "26b"), (LAYOUT_23, "23")]
)
def test_fill_notice_in_every_layout(layout: list[str], name: str) -> None:
    n = wire.parse_notice(fields(layout))
    assert n.layout == name
    assert (n.order_no, n.symbol, n.side, n.qty, n.price) == (
        "0000117057",
        "005930",
        Side.BUY,
        4,
        70000,
    )
    assert (n.is_fill, n.refused, n.hhmmss, n.order_qty, n.order_price) == (
        True,
        False,
        "101500",
        10,
        70000,
    )
    assert n.orig_order_no == ""


def test_cancel_confirmation_notice_names_the_original() -> None:
    n = wire.parse_notice(
        fields(LAYOUT_26A, ODER_NO="117060", OODER_NO="0000117057", RCTF_CLS="2", CNTG_YN="1",
               SELN_BYOV_CLS="01")
    )  # fmt: skip
    assert (n.order_no, n.orig_order_no, n.rctf_cls, n.is_fill) == (
        "0000117060",
        "0000117057",
        "2",
        False,
    )
    assert n.side is Side.SELL
    # 26b has no original order number at all
    assert wire.parse_notice(fields(LAYOUT_26B, CNTG_YN="1")).orig_order_no == ""


def test_26_field_layout_detection_edge() -> None:
    # 26b with the account echo missing still reads the short quantity at 3
    assert wire.notice_layout(fields(LAYOUT_26B, ACNT_NO2="")) == "26b"
    # 26a with an original order number: 10 digits at 3, quantity at 16
    assert wire.notice_layout(fields(LAYOUT_26A, OODER_NO="0000117000")) == "26a"


@pytest.mark.parametrize("count", [5, 22, 24])
def test_notice_with_unknown_width(count: int) -> None:
    with pytest.raises(wire.FrameError, match="fields"):
        wire.parse_notice(["x"] * count)


def test_notice_with_bad_number_is_a_clear_error() -> None:
    with pytest.raises(BadResponse, match="CNTG_QTY"):
        wire.parse_notice(fields(LAYOUT_26A, CNTG_QTY="4.5"))


# ------------------------------------------------------------------ rows
ROW = {
    "ord_dt": "20261125", "ord_gno_brno": "06010", "odno": "117057", "orgn_odno": "",
    "ord_dvsn_cd": "00", "sll_buy_dvsn_cd": "02", "pdno": "005930", "ord_qty": "10",
    "ord_unpr": "70000", "ord_tmd": "101500", "tot_ccld_qty": "4", "avg_prvs": "70000.00",
    "tot_ccld_amt": "280000", "cncl_yn": "N", "cnc_cfrm_qty": "0", "rmn_qty": "6",
    "rjct_qty": "0", "ord_orgno": "91252",
}  # fmt: skip


def test_order_row_and_status() -> None:
    r = wire.parse_order_row(ROW)
    assert (r.order_no, r.branch, r.side, r.qty, r.price, r.filled_qty) == (
        "0000117057", "06010", Side.BUY, 10, 70000, 4,
    )  # fmt: skip
    assert wire.order_status(r) == "open" and not r.is_amendment
    done = wire.parse_order_row(dict(ROW, tot_ccld_qty="10", rmn_qty="0"))
    assert wire.order_status(done) == "filled"
    canceled = wire.parse_order_row(dict(ROW, rmn_qty="0", cnc_cfrm_qty="6"))
    assert wire.order_status(canceled) == "canceled"
    ioc = wire.parse_order_row(dict(ROW, ord_dvsn_cd="11", rmn_qty="0", tot_ccld_qty="4"))
    assert wire.order_status(ioc) == "expired"
    rejected = wire.parse_order_row(dict(ROW, rmn_qty="0", tot_ccld_qty="0", rjct_qty="10"))
    assert wire.order_status(rejected) == "rejected"
    cancel_row = wire.parse_order_row(dict(ROW, odno="117060", orgn_odno="117057"))
    assert cancel_row.is_amendment and cancel_row.orig_order_no == "0000117057"


def test_order_row_keys_in_any_case_and_branch_fallback() -> None:
    upper = {k.upper(): v for k, v in ROW.items() if k != "ord_gno_brno"}
    r = wire.parse_order_row(upper)
    assert (r.order_no, r.branch) == ("0000117057", "91252")  # ord_orgno when no ord_gno_brno
    with pytest.raises(BadResponse, match="sll_buy_dvsn_cd"):
        wire.parse_order_row(dict(ROW, sll_buy_dvsn_cd="03"))


def test_balance_output2_as_list_or_object() -> None:
    rows = [{"pdno": "005930", "hldg_qty": "10"}, {"pdno": "000660", "hldg_qty": "0"}]
    assert wire.parse_balance(rows, [{"dnca_tot_amt": "1000"}]) == (1000, {"005930": 10})
    assert wire.parse_balance(rows, {"dnca_tot_amt": "5"}) == (5, {"005930": 10})
    with pytest.raises(BadResponse, match="output2"):
        wire.parse_balance(rows, [])


def test_two_notices_in_one_encrypted_frame() -> None:
    plain = "^".join(fields(LAYOUT_26A) + fields(LAYOUT_26A, ODER_NO="117058", CNTG_QTY="6"))
    frame = wire.parse_frame(f"1|H0STCNI0|002|{wire.encrypt(KEY, IV, plain)}")
    assert isinstance(frame, wire.Data) and frame.encrypted and frame.count == 2
    rows = wire.records(wire.decrypt(KEY, IV, frame.payload), frame.count)
    notices = [wire.parse_notice(r) for r in rows]
    assert [(n.order_no, n.qty) for n in notices] == [("0000117057", 4), ("0000117058", 6)]
