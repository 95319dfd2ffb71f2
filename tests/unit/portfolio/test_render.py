"""`qts-ctl positions` and `qts-ctl pnl` tables from the engines' real output."""

from __future__ import annotations

import datetime as dt
from typing import Any

from protocol import codec
from protocol.enums import Side
from services.ctl.render import render_pnl, render_positions
from services.performance.engine import PerformanceEngine
from services.portfolio.engine import PortfolioEngine
from tests.unit.portfolio.test_engine import SYM, Journal

WED = dt.date(2026, 3, 4)


def books() -> PortfolioEngine:
    engine, j = PortfolioEngine(10_000_000, 1.5), Journal()
    engine.apply(j.fill(Side.BUY, 10, 70_000, day=(2026, 3, 3), strategy="pulse"))  # fee 105
    engine.apply(j.fill(Side.SELL, 4, 71_000, day=(2026, 3, 4), strategy="pulse"))
    engine.on_trade(SYM, 72_000)
    return engine


def wire(data: Any) -> Any:
    """As qts-ctl receives it: through the ctl reply's builtins."""
    return codec.to_builtins(data)


def test_positions_table_shows_account_then_strategy_rows_and_the_deposit() -> None:
    engine = books()
    data = wire(
        {
            "positions": engine.position_rows(WED),
            "cash": engine.cash,
            "equity": engine.equity(),
            "balance": engine.balance(WED),
        }
    )

    lines = render_positions(data).splitlines()

    assert lines[0].split() == [
        "strategy", "symbol", "qty", "sellable", "avg", "price", "last", "unrealised",
        "realised", "fees+tax",
    ]  # fmt: skip
    # 284,000: fee 42, tax 142 + 426; fees+tax 105 + 42 + 568 = 715
    assert lines[2].split() == [
        "account",
        SYM,
        "6",
        "6",
        "70,000",
        "72,000",
        "12,000",
        "4,000",
        "715",
    ]
    assert lines[3].split()[0] == "pulse"
    # cash 10,000,000 - 700,105 + 284,000 - 42 - 568 = 9,583,285
    assert "cash 9,583,285 KRW, equity 10,015,285 KRW" in lines
    assert any(
        line.startswith("deposit D+0 10,000,000, D+1 9,299,895, D+2 9,583,285") for line in lines
    )


def test_pnl_table_has_strategy_total_symbol_and_performance_rows() -> None:
    engine = books()
    perf = PerformanceEngine(capital=10_000_000)
    perf.on_snapshot(engine.snapshot(1, 0))
    data = wire({"portfolio": engine.pnl(WED), "performance": perf.summary()})

    text = render_pnl(data)

    pnl_block, symbol_block, perf_block, *_ = text.split("\n\n")
    rows = {
        line.split()[0]: line.split() for line in (pnl_block + "\n" + symbol_block).splitlines()
    }
    perf_rows = {line.split()[0]: line.split() for line in perf_block.splitlines()}
    # realised 4,000, unrealised 12,000, gross 16,000, fees 147, taxes 568, net 15,285
    assert rows["total"][:7] == ["total", "4,000", "12,000", "16,000", "147", "568", "15,285"]
    assert rows["pulse"][:7] == ["pulse", "4,000", "12,000", "16,000", "147", "568", "15,285"]
    assert rows[SYM][-1] == "15,285"
    assert perf_rows["strategy"][-2:] == ["profit", "factor"] and perf_rows["total"][1] == "0"
    assert "latency (µs)" in text
