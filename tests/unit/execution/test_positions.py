"""Positions against the broker's balance (issue 4's periodic reconciliation)."""

from __future__ import annotations

from pathlib import Path

from protocol.enums import TradingState
from services.execution.adapters.base import Fill, SubmitAccepted
from tests.unit.execution.fakes import NOW, make, order

DAY = 86_400 * 1_000_000_000


def test_holdings_qts_did_not_make_become_the_days_baseline(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    # the account held 30 shares bought by hand before QTS started today
    assert engine.check_positions({"005930": 30}, NOW) == {}
    engine.on_order(order("b1", qty=10), TradingState.ACTIVE, True, NOW, 0)
    engine.on_adapter([SubmitAccepted(adapter.submits[-1][0], "V1", NOW)], NOW, 0)
    engine.on_adapter([Fill("V1", 1, 10, 70_000, 0, NOW)], NOW, 0)
    assert engine.check_positions({"005930": 40}, NOW) == {}
    # a fill we never heard of: the broker holds 5 more than we can explain
    assert engine.check_positions({"005930": 45}, NOW) == {"005930": (40, 45)}
    # and a symbol we think we hold that the broker does not
    engine.journal.set_baseline("2023-11-15", {"005930": 30, "000660": 2})
    assert engine.check_positions({"005930": 40}, NOW) == {"000660": (2, 0)}


def test_the_baseline_is_fixed_once_per_kst_day(tmp_path: Path) -> None:
    engine, _, _ = make(tmp_path)
    assert engine.check_positions({"005930": 30}, NOW) == {}
    assert engine.check_positions({"005930": 31}, NOW) == {"005930": (30, 31)}
    assert engine.check_positions({"005930": 31}, NOW + DAY) == {}  # a new day, a new baseline


def test_open_count_follows_the_order_states(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    engine.on_order(order("b1", qty=10), TradingState.ACTIVE, True, NOW, 0)
    engine.on_order(order("b2", qty=10), TradingState.ACTIVE, True, NOW, 0)
    assert engine.open_orders() == 2
    engine.on_adapter([SubmitAccepted(adapter.submits[0][0], "V1", NOW)], NOW, 0)
    engine.on_adapter([Fill("V1", 1, 10, 70_000, 0, NOW)], NOW, 0)
    assert engine.open_orders() == 1 == len(engine.journal.orders(open_only=True))
