"""Profit factor, drawdown, intraday Sharpe, per-day figures and the report's data."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest

from protocol.enums import Side
from protocol.messages import OrderAccepted, OrderFilled, PortfolioSnapshot, Position, Trace
from services.performance.engine import PerformanceEngine, max_drawdown, sharpe

KST = ZoneInfo("Asia/Seoul")
MIN = 60 * 1_000_000_000


def at(day: int, hh: int, mm: int, ss: int = 0) -> int:
    return int(dt.datetime(2026, 11, day, hh, mm, ss, tzinfo=KST).timestamp()) * 1_000_000_000


def fill(seq: int, ts: int, strategy: str = "s1", qty: int = 1, price: int = 100) -> OrderFilled:
    return OrderFilled(
        seq=seq, fill_id=f"F{seq}", client_order_id=f"C{seq}", broker_order_no="B",
        strategy=strategy, symbol="X", side=Side.BUY, qty=qty, price=price, leaves_qty=0,
        exch_ns=ts, ts_ns=ts,
    )  # fmt: skip


def snap(
    seq: int, ts: int, equity: int, rows: list[tuple[str, int, int, int]]
) -> PortfolioSnapshot:
    """rows: (strategy, qty, realized, fees)"""
    positions = [
        Position(strategy=s, symbol="X", qty=q, cost=0, last_price=0, realized=r, unrealized=0,
                 fees=f, taxes=0)
        for s, q, r, f in rows
    ]  # fmt: skip
    acct = [p for p in positions if p.strategy == ""]
    return PortfolioSnapshot(
        seq=seq, ts_ns=ts, exec_seq=seq, cash=equity, equity=equity,
        realized=sum(p.realized for p in acct), unrealized=0,
        fees=sum(p.fees for p in acct), taxes=0, positions=positions,
    )  # fmt: skip


def test_profit_factor_is_gross_won_over_gross_lost() -> None:
    engine = PerformanceEngine()
    # s1 round trips: +100, -30, +50
    for i, (q, r) in enumerate([(1, 0), (0, 100), (1, 100), (0, 70), (1, 70), (0, 120)], 1):
        engine.on_snapshot(snap(i, at(25, 10, i), 1_000, [("s1", q, r, 0), ("", q, r, 0)]))

    s = engine.summary()["by_strategy"]["s1"]

    assert s["profit_factor"] == 150 / 30 == 5.0
    assert (s["avg_win"], s["avg_loss"], s["round_trips"]) == (75, -30, 3)


def test_profit_factor_without_a_loss_is_none() -> None:
    assert PerformanceEngine().summary()["profit_factor"] is None


@pytest.mark.parametrize(
    ("values", "dd"), [([], 0), ([5, 4, 3], 2), ([0, 100, 40, 120, 10, 50], 110), ([1, 2, 3], 0)]
)
def test_max_drawdown(values: list[int], dd: int) -> None:
    assert max_drawdown(values) == dd


def test_sharpe_on_minute_buckets_by_hand() -> None:
    t0 = at(25, 9, 0)
    # last value in each minute: 0, 100, (quiet minute: 100 carried), 50, 150
    points = [(t0, 0), (t0 + MIN, 80), (t0 + MIN + 5, 100), (t0 + 3 * MIN, 50), (t0 + 4 * MIN, 150)]

    s = sharpe(points, capital=1_000)

    # returns 0.1, 0, -0.05, 0.1: mean 0.0375, sample var 0.004625
    mean, sd = 0.0375, math.sqrt((0.0625**2 + 0.0375**2 + 0.0875**2 + 0.0625**2) / 3)
    assert s["returns"] == 4
    assert s["per_bucket"] == pytest.approx(mean / sd)
    assert s["annualized"] == pytest.approx(mean / sd * math.sqrt(252 * 390))


def test_sharpe_of_a_flat_or_short_curve_is_none() -> None:
    t0 = at(25, 9, 0)
    assert sharpe([(t0, 5), (t0 + MIN, 5), (t0 + 2 * MIN, 5)], 1_000)["per_bucket"] is None
    assert sharpe([(t0, 5), (t0 + MIN, 6)], 1_000)["per_bucket"] is None
    assert sharpe([(t0, 5), (t0 + MIN, 6), (t0 + 2 * MIN, 4)], 0)["per_bucket"] is None


def test_counts_and_latency_are_split_by_kst_day() -> None:
    engine = PerformanceEngine()
    engine.on_exec(fill(1, at(24, 10, 0)))
    # 2026-11-25 08:30 KST is still 11-24 in UTC: the KST date decides
    engine.on_exec(fill(2, at(25, 8, 30)))
    engine.on_exec(
        OrderAccepted(
            seq=3, client_order_id="C3", broker_order_no="B", strategy="s1", symbol="X",
            side=Side.BUY, qty=1, price=100, ts_ns=at(25, 9, 1),
            trace=Trace(observed=1, evaluated=1_001, decided=2_001, sent=3_001, acked=10_001),
        )
    )  # fmt: skip

    d24 = engine.report_data(dt.date(2026, 11, 24))
    d25 = engine.report_data(dt.date(2026, 11, 25))

    assert d24["total"]["fills"] == 1 and d25["total"]["fills"] == 1
    assert engine.summary()["fills"] == 2
    assert d24["latency_us"]["broker"]["count"] == 0
    assert d25["latency_us"]["broker"] == {"count": 1, "p50": 7, "p99": 7, "p999": 7, "max": 7}
    assert d25["latency_bins_us"]["tick_to_ack"] == [[10, 1]]
    with pytest.raises(KeyError):
        engine.report_data(dt.date(2026, 11, 23))


def test_report_data_pnl_curve_and_per_strategy_drawdown() -> None:
    engine = PerformanceEngine(capital=1_000_000)
    engine.on_exec(fill(1, at(25, 9, 0), "a", 10, 1_000))
    rows = [  # (minute, a realized, b realized): a rises then falls, b falls
        (0, 0, 0),
        (1, 5_000, -1_000),
        (2, 2_000, -3_000),
        (3, 4_000, -2_000),
    ]
    for i, (m, ra, rb) in enumerate(rows, 1):
        engine.on_snapshot(
            snap(i, at(25, 9, m), 1_000_000 + ra + rb - 10,
                 [("a", 0, ra, 10), ("b", 0, rb, 0), ("", 0, ra + rb, 10)])
        )  # fmt: skip
    # two snapshots in one second: the curve keeps only the later one
    last = [("a", 0, 4_000, 10), ("b", 0, -2_000, 0), ("", 0, 2_000, 10)]
    engine.on_snapshot(snap(9, at(25, 9, 3) + 500_000_000, 1_002_000 - 10, last))

    data = engine.report_data(dt.date(2026, 11, 25))

    assert [p[2] for p in data["curve"]] == [-10, 3_990, -1_010, 1_990]
    assert data["by_strategy"]["a"]["max_drawdown"] == 3_000
    assert data["by_strategy"]["b"]["max_drawdown"] == 3_000
    assert data["total"]["max_drawdown"] == 5_000 and data["total"]["equity_max_drawdown"] == 5_000
    assert data["total"]["pnl"]["net"] == 1_990 and data["total"]["pnl"]["equity"] == 1_001_990
    assert data["by_strategy"]["a"]["pnl"] == {
        "realized": 4_000, "unrealized": 0, "gross": 4_000, "fees": 10, "taxes": 0,
        "costs": 10, "net": 3_990,
    }  # fmt: skip
    assert data["by_symbol"]["X"]["net"] == 1_990
    assert data["fills"] == [[at(25, 9, 0), "a", "X", "BUY", 10, 1_000]]
    assert data["by_strategy"]["a"]["turnover"] == 10_000
    assert data["total"]["sharpe"]["returns"] == 3
