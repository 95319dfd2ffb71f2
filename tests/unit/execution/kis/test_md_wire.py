"""KIS market data (services/brokers_md/kis.py): H0STCNT0/H0STASP0 frames in the
`0|TR|count|fields` format, single and multi-record, to protocol Trade/Book; bad frames; the
41-registration table."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from protocol.enums import Side
from protocol.messages import Book, Trade
from services.brokers_md import kis
from tests.brokers.kis_notices import book_record, md_frame, trade_record

DAY = "20261125"


def ns(hhmmss: str, day: str = DAY) -> int:
    t = dt.datetime.strptime(day + hhmmss, "%Y%m%d%H%M%S").replace(tzinfo=ZoneInfo("Asia/Seoul"))
    return int(t.timestamp()) * 1_000_000_000


def test_one_trade_record_becomes_a_trade() -> None:
    frame = md_frame(kis.TRADE_TR, [trade_record("005930", 73_100, 5, "123929", 1_234, "1")])
    [ev] = kis.events(frame, stream=7, first_seq=1, day=DAY)
    assert ev == Trade(
        stream=7, seq=1, symbol="005930", exch_ns=ns("123929"), price=73_100, qty=5,
        aggressor=Side.BUY, cum_volume=1_234,
    )  # fmt: skip


def test_multi_record_trade_frame_keeps_order_and_numbers_each() -> None:
    recs = [
        trade_record("005930", 73_100, 5, "090001", 5, "1"),
        trade_record("000660", 181_000, 2, "090001", 2, "5"),
        trade_record("005930", 73_000, 1, "090002", 6, "3"),
        trade_record("035720", 41_050, 10, "090002", 10, "1"),
    ]
    frame = md_frame(kis.TRADE_TR, recs)
    assert frame.startswith("0|H0STCNT0|004|005930^090001^73100^")
    evs = kis.events(frame, stream=1, first_seq=41, day=DAY)
    assert [(e.seq, e.symbol, e.price, e.qty) for e in evs if isinstance(e, Trade)] == [
        (41, "005930", 73_100, 5), (42, "000660", 181_000, 2),
        (43, "005930", 73_000, 1), (44, "035720", 41_050, 10),
    ]  # fmt: skip
    assert [e.aggressor for e in evs if isinstance(e, Trade)] == [
        Side.BUY, Side.SELL, None, Side.BUY
    ]  # fmt: skip


def test_trade_date_is_the_records_business_date() -> None:
    rec = trade_record("005930", 73_100, 5, "153000", day="20261124")
    [ev] = kis.events(md_frame(kis.TRADE_TR, [rec]), stream=1, first_seq=1, day=DAY)
    assert ev.exch_ns == ns("153000", "20261124")
    rec[33] = ""  # no business date: the caller's day
    [ev] = kis.events(md_frame(kis.TRADE_TR, [rec]), stream=1, first_seq=1, day=DAY)
    assert ev.exch_ns == ns("153000")


def test_book_record_becomes_a_book_best_first_without_empty_levels() -> None:
    bids = [(73_000, 120), (72_900, 300), (72_800, 50)]
    asks = [(73_100, 80), (73_200, 10)]
    frame = md_frame(kis.BOOK_TR, [book_record("005930", bids, asks, "100000")])
    [ev] = kis.events(frame, stream=3, first_seq=9, day=DAY)
    assert ev == Book(stream=3, seq=9, symbol="005930", exch_ns=ns("100000"), bids=bids, asks=asks)


def test_full_ten_level_books_in_a_two_record_frame() -> None:
    bids = [(70_000 - 100 * i, i + 1) for i in range(10)]
    asks = [(70_100 + 100 * i, 10 * (i + 1)) for i in range(10)]
    recs = [book_record("005930", bids, asks), book_record("000660", bids[:1], asks[:1])]
    evs = kis.events(md_frame(kis.BOOK_TR, recs), stream=1, first_seq=1, day=DAY)
    assert isinstance(evs[0], Book) and isinstance(evs[1], Book)
    assert (evs[0].bids, evs[0].asks) == (bids, asks)
    assert (evs[1].symbol, evs[1].bids, evs[1].asks) == ("000660", bids[:1], asks[:1])


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("0|H0STCNT0|001", "parts"),
        ("1|H0STCNT0|001|abc", "encrypted"),
        ("0|H0STCNI9|001|" + "^".join(["x"] * 26), "not a market-data"),
        ("0|H0STCNT0|0x1|" + "^".join(["0"] * 46), "count"),
        ("0|H0STCNT0|000|", "count"),
        ("0|H0STCNT0|002|" + "^".join(trade_record("005930", 1, 1)), "fields"),
        ("0|H0STASP0|001|" + "^".join(["0"] * 58), "fields"),
        (md_frame("H0STCNT0", [[*trade_record("005930", 1, 1), "0"]]), "47 fields"),
    ],
)
def test_malformed_frames_are_refused_with_the_reason(frame: str, why: str) -> None:
    with pytest.raises(kis.MdFrameError, match=why):
        kis.events(frame, stream=1, first_seq=1, day=DAY)


@pytest.mark.parametrize(
    ("index", "value", "why"),
    [
        (2, "73100.5", "STCK_PRPR"),
        (2, "-1", "STCK_PRPR"),
        (12, "", "CNTG_VOL"),
        (2, "0", "price 0"),
        (1, "25xx00", "bad KST time"),
        (1, "256100", "bad KST date/time"),
        (33, "2026112", "bad KST date"),
    ],
)
def test_bad_numbers_and_times_in_a_trade(index: int, value: str, why: str) -> None:
    rec = trade_record("005930", 73_100, 5)
    rec[index] = value
    good = trade_record("000660", 181_000, 1)
    with pytest.raises(kis.MdFrameError, match=why):  # one bad record spoils the frame
        kis.events(md_frame(kis.TRADE_TR, [good, rec]), stream=1, first_seq=1, day=DAY)


def test_bad_book_quantity() -> None:
    rec = book_record("005930", [(73_000, 1)], [(73_100, 1)])
    rec[33] = "1.5"
    with pytest.raises(kis.MdFrameError, match="BIDP_RSQN1"):
        kis.events(md_frame(kis.BOOK_TR, [rec]), stream=1, first_seq=1, day=DAY)


def test_control_frames() -> None:
    ping = kis.parse_control('{"header":{"tr_id":"PINGPONG","datetime":"20261125093000"}}')
    assert ping.is_pingpong
    ok = kis.parse_control(
        '{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},'
        '"body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS"}}'
    )
    assert (ok.ok, ok.tr_id, ok.tr_key, ok.msg_cd) == (True, "H0STCNT0", "005930", "OPSP0000")
    assert kis.is_data("0|H0STCNT0|001|x") and not kis.is_data('{"header":{}}')
    for bad in ("not json", "[1, 2]", '{"header": "x"}'):
        with pytest.raises(kis.MdFrameError):
            kis.parse_control(bad)


def test_subscribe_message_shape() -> None:
    import json

    msg = json.loads(kis.subscribe_message("ak", kis.BOOK_TR, "005930", subscribe=False))
    assert msg == {
        "header": {"approval_key": "ak", "custtype": "P", "tr_type": "2",
                   "content-type": "utf-8"},
        "body": {"input": {"tr_id": "H0STASP0", "tr_key": "005930"}},
    }  # fmt: skip


def test_registrations_stop_at_41_with_the_notice_reserved() -> None:
    regs = kis.Registrations(reserved=1)  # the execution notice shares the session
    symbols = [f"{i:06d}" for i in range(25)]
    left = regs.plan(symbols)  # trades and books: 2 per symbol, 40 fit
    assert len(regs) == 40 and left == symbols[20:]
    assert regs.refused == 10  # 5 symbols x 2, counted, never sent
    assert not regs.add(kis.TRADE_TR, "999999")
    assert regs.add(kis.TRADE_TR, symbols[0])  # already there: fine
    assert regs.remove(kis.BOOK_TR, symbols[0]) and not regs.remove(kis.BOOK_TR, symbols[0])
    assert regs.add(kis.TRADE_TR, "999999") and len(regs) == 40
    assert regs.all()[0] == (kis.TRADE_TR, symbols[0])  # kept in order for re-subscription


def test_a_symbol_is_registered_whole_or_not_at_all() -> None:
    regs = kis.Registrations(cap=3)
    assert regs.plan(["005930", "000660"]) == ["000660"]
    assert regs.all() == [(kis.TRADE_TR, "005930"), (kis.BOOK_TR, "005930")]
    assert regs.plan(["000660"], books=False) == [] and len(regs) == 3


@pytest.mark.parametrize(("cap", "reserved"), [(0, 0), (42, 0), (41, 41), (10, -1)])
def test_registration_limits_are_checked(cap: int, reserved: int) -> None:
    with pytest.raises(ValueError, match="cap"):
        kis.Registrations(cap=cap, reserved=reserved)


def test_registrations_refuse_bad_keys() -> None:
    regs = kis.Registrations()
    with pytest.raises(ValueError, match="tr_id"):
        regs.add("H0STCNI0", "005930")
    with pytest.raises(ValueError, match="stock code"):
        regs.add(kis.TRADE_TR, "5930")
