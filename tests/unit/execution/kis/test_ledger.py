"""The fill ledger: one numbering for notices and queries, kept across restarts."""

from __future__ import annotations

from pathlib import Path

from protocol.enums import Side
from services.execution.adapters.kis.ledger import FillLedger


def ledger(tmp_path: Path) -> FillLedger:
    led = FillLedger(tmp_path / "ledger.jsonl")
    led.add_order("0000000001", "005930", Side.BUY, 10, 70_000, "06010", 1)
    return led


def test_notice_fills_are_numbered_by_cumulative_quantity(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    f1, amb = led.notice_fill("0000000001", 3, 70_000, 10, "100000")
    f2, _ = led.notice_fill("0000000001", 4, 69_900, 11, "100001")
    assert f1 is not None and f2 is not None and not amb
    assert (f1.fill_no, f2.fill_no) == (3, 7)
    assert led.orders["0000000001"].leaves == 3
    # the query agrees: nothing missing
    assert led.query_total("0000000001", 7, 3 * 70_000 + 4 * 69_900, 12, "100002") is None
    led.close()


def test_query_fills_the_gap_and_late_notices_are_absorbed(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    led.notice_fill("0000000001", 2, 70_000, 10, "100000")
    # notices for 5 more were lost: the query shows 7 filled
    gap = led.query_total("0000000001", 7, 2 * 70_000 + 5 * 70_100, 20, "100010")
    assert gap is not None
    assert (gap.fill_no, gap.qty, gap.price, gap.synthetic) == (7, 5, 70_100, True)
    # one of the lost notices arrives late (its fill time is before the query): absorbed
    late, amb = led.notice_fill("0000000001", 2, 70_100, 21, "100005")
    assert late is None and not amb
    # a new fill after the query is counted
    new, _ = led.notice_fill("0000000001", 1, 70_200, 22, "100011")
    assert new is not None and (new.fill_no, new.qty) == (8, 1)
    # a notice in the query's own second is absorbed but flagged
    same, amb = led.notice_fill("0000000001", 3, 70_100, 23, "100010")
    assert same is None and amb
    led.close()


def test_average_price_of_a_gap_rounds_half_up(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    gap = led.query_total("0000000001", 2, 70_000 + 70_001, 5, "100000")
    assert gap is not None and gap.price == 70_001  # 70000.5 -> 70001
    led.close()


def test_restart_replays_the_same_story(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    led.notice_fill("0000000001", 2, 70_000, 10, "100000")
    led.query_total("0000000001", 5, 2 * 70_000 + 3 * 70_100, 20, "100010")
    led.notice_fill("0000000001", 1, 70_100, 21, "100005")  # absorbed
    led.close()
    with open(tmp_path / "ledger.jsonl", "a") as fh:
        fh.write('{"k":"fill","o":"0000')  # a torn last line
    again = FillLedger(tmp_path / "ledger.jsonl")
    info = again.orders["0000000001"]
    assert [(f.fill_no, f.qty, f.price) for f in info.fills] == [(2, 2, 70_000), (5, 3, 70_100)]
    assert (info.unconfirmed, info.covers_until, info.branch) == (2, "100010", "06010")
    assert again.skipped_lines == 1
    again.close()
