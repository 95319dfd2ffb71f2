"""The Kiwoom fill ledger: fills numbered by cumulative quantity, the same from notices and
queries, kept across a restart."""

from __future__ import annotations

from pathlib import Path

from protocol.enums import Side
from services.execution.adapters.kiwoom.ledger import FillLedger


def ledger_with_order(path: Path) -> FillLedger:
    ledger = FillLedger(path)
    ledger.add_order("0000001", "005930", Side.BUY, 10, 70000, "KRX", "0", 1)
    return ledger


def test_notices_and_queries_number_fills_alike(tmp_path: Path) -> None:
    ledger = ledger_with_order(tmp_path / "l.jsonl")
    try:
        first = ledger.fill_to("0000001", 4, 280000, 4, 70000, 70000, 2, "notice")
        assert first is not None and (first.fill_no, first.qty, first.price) == (4, 4, 70000)
        # the same notice again, or a late one: no new fill
        assert ledger.fill_to("0000001", 4, 280000, 4, 70000, 70000, 3, "notice") is None
        assert ledger.fill_to("0000001", 3, 210000, 3, 70000, 70000, 3, "notice") is None
        # a query shows more than the notices told: one fill up to its total, priced from
        # the amounts (10 at an average of 69,940 = 699,400; 280,000 already reported)
        gap = ledger.fill_to("0000001", 10, 699400, 0, 0, 69940, 4, "query")
        assert gap is not None and (gap.fill_no, gap.qty, gap.price) == (10, 6, 69900)
        info = ledger.orders["0000001"]
        assert (info.filled, info.leaves, info.filled_amt) == (10, 0, 699400)
        # the notices that were lost arrive late: already counted
        assert ledger.fill_to("0000001", 7, 489700, 3, 69900, 69900, 5, "notice") is None
    finally:
        ledger.close()


def test_price_without_amounts_falls_back(tmp_path: Path) -> None:
    ledger = ledger_with_order(tmp_path / "l.jsonl")
    try:
        fill = ledger.fill_to("0000001", 5, 0, 3, 70100, 70050, 2, "notice")
        assert fill is not None and (fill.qty, fill.price) == (5, 70050)
    finally:
        ledger.close()


def test_reload_after_restart_and_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = ledger_with_order(path)
    ledger.fill_to("0000001", 4, 280000, 4, 70000, 70000, 2, "notice")
    ledger.add_order("0000002", "000660", Side.SELL, 3, 0, "", "", 5)
    ledger.add_order("0000002", "000660", Side.SELL, 3, 0, "KRX", "13", 6)  # learned later
    ledger.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"k":"fill","o":"0000001"')  # a crash mid-write
    again = FillLedger(path)
    try:
        assert again.skipped_lines == 1
        info = again.orders["0000001"]
        assert (info.filled, info.fills[0].price, info.exchange) == (4, 70000, "KRX")
        assert (again.orders["0000002"].exchange, again.orders["0000002"].trde_tp) == ("KRX", "13")
        assert again.fill_to("0000001", 4, 280000, 4, 70000, 70000, 3, "notice") is None
        nxt = again.fill_to("0000001", 6, 420000, 2, 70000, 70000, 3, "notice")
        assert nxt is not None and nxt.fill_no == 6
    finally:
        again.close()
    third = FillLedger(path)  # what was written after the torn line reads back
    try:
        assert third.orders["0000001"].filled == 6
    finally:
        third.close()
