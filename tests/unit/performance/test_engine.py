"""Performance: counts, stage latency math, round trips and hit rate, drawdown."""

from __future__ import annotations

from protocol.enums import Side
from protocol.messages import (
    ExecEvent,
    IntentDenied,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PortfolioSnapshot,
    Position,
    Trace,
)
from services.performance.engine import PerformanceEngine, stage_latencies_ns


def accepted(seq: int, trace: Trace, strategy: str = "s1") -> OrderAccepted:
    return OrderAccepted(
        seq=seq, client_order_id=f"C{seq}", broker_order_no="B", strategy=strategy, symbol="X",
        side=Side.BUY, qty=1, price=100, ts_ns=0, trace=trace,
    )  # fmt: skip


def filled(seq: int, qty: int, price: int, strategy: str = "s1", fid: str = "") -> OrderFilled:
    return OrderFilled(
        seq=seq, fill_id=fid or f"F{seq}", client_order_id="C", broker_order_no="B",
        strategy=strategy, symbol="X", side=Side.BUY, qty=qty, price=price, leaves_qty=0,
        exch_ns=0, ts_ns=0,
    )  # fmt: skip


def snap(seq: int, equity: int, rows: list[tuple[str, str, int, int]]) -> PortfolioSnapshot:
    positions = [
        Position(strategy=s, symbol=sym, qty=q, cost=0, last_price=0, realized=r, unrealized=0,
                 fees=0, taxes=0)
        for s, sym, q, r in rows
    ]  # fmt: skip
    return PortfolioSnapshot(
        seq=seq, ts_ns=0, exec_seq=0, cash=equity, equity=equity, realized=0, unrealized=0,
        fees=0, taxes=0, positions=positions,
    )  # fmt: skip


def test_stage_latency_math_and_zero_stamps_skipped() -> None:
    t = Trace(observed=1_000, evaluated=3_000, decided=7_000, sent=15_000, acked=0)

    lat = stage_latencies_ns(t)

    assert lat == {"strategy": 2_000, "risk": 4_000, "execution": 8_000, "tick_to_order": 14_000}


def test_accepted_traces_then_histograms_in_microseconds() -> None:
    engine = PerformanceEngine()
    for i in range(1, 101):
        engine.on_exec(accepted(i, Trace(observed=0 + 1, sent=1 + i * 1_000, acked=1 + i * 2_000)))

    lat = engine.summary()["latency_us"]

    assert lat["broker"]["count"] == 100
    assert lat["broker"]["p50"] == 50 and lat["broker"]["max"] == 100
    assert lat["tick_to_ack"]["p99"] == 198 and lat["tick_to_ack"]["max"] == 200
    assert lat["strategy"]["count"] == 0  # evaluated was never stamped


def test_counts_by_strategy_and_total_with_replays_ignored() -> None:
    engine = PerformanceEngine()
    events: list[ExecEvent] = [
        OrderSubmitted(seq=1, client_order_id="C1", intent_id="I1", strategy="a", symbol="X",
                       side=Side.BUY, qty=10, price=100, ts_ns=0),
        filled(2, 4, 100, "a"),
        filled(3, 6, 101, "a"),
        filled(4, 6, 101, "a", fid="F3"),  # same fill replayed under a new seq
        OrderRejected(seq=5, client_order_id="C2", strategy="b", symbol="X", side=Side.BUY,
                      qty=1, price=1, code="BROKER", reason="", ts_ns=0),
        IntentDenied(intent_id="I3", strategy="b", symbol="X", side=Side.BUY, qty=1, price=1,
                     code="LIMIT", reason="", ts_ns=0, seq=6),
        OrderCanceled(seq=7, client_order_id="C1", broker_order_no="B", strategy="a", symbol="X",
                      side=Side.BUY, canceled_qty=0, reason="", ts_ns=0),
    ]  # fmt: skip
    for ev in events + events[:3]:
        engine.on_exec(ev)

    s = engine.summary()

    assert (s["orders"], s["fills"], s["rejects"], s["cancels"]) == (1, 2, 1, 1)
    assert s["denials"] == {"LIMIT": 1} and s["turnover"] == 400 + 606
    assert s["by_strategy"]["a"]["fills"] == 2 and s["by_strategy"]["b"]["denials"] == {"LIMIT": 1}


def test_round_trips_then_hit_rate_and_average_win_loss() -> None:
    engine = PerformanceEngine()
    trips = [  # (qty, realized) per snapshot for strategy s1 in X
        (10, 0),
        (5, 300),
        (0, 500),  # trip 1: +500 (partial exit included)
        (7, 500),
        (0, 200),  # trip 2: -300
        (3, 200),
        (0, 1_200),  # trip 3: +1,000
    ]
    for i, (q, r) in enumerate(trips, start=1):
        engine.on_snapshot(snap(i, 1_000_000, [("s1", "X", q, r), ("", "X", q, r)]))

    s = engine.summary()["by_strategy"]["s1"]

    assert s["round_trips"] == 3
    assert s["hit_rate"] == 2 / 3
    assert s["avg_win"] == 750 and s["avg_loss"] == -300


def test_max_drawdown_from_equity_peaks() -> None:
    engine = PerformanceEngine()
    for i, eq in enumerate([100, 120, 90, 130, 110, 125], start=1):
        engine.on_snapshot(snap(i, eq, []))

    assert engine.summary()["pnl"]["max_drawdown"] == 30
    assert engine.summary()["pnl"]["equity"] == 125


def test_stale_snapshot_then_ignored() -> None:
    engine = PerformanceEngine()
    engine.on_snapshot(snap(5, 100, []))

    engine.on_snapshot(snap(4, 50, []))

    assert engine.max_drawdown == 0 and engine.summary()["pnl"]["equity"] == 100


def test_live_events_before_catch_up_then_older_journal_events_still_counted() -> None:
    engine = PerformanceEngine()
    engine.on_exec(filled(7, 1, 100))  # heard live while execution's journal was unreachable

    for seq in range(1, 8):  # the catch-up replays the whole journal, 7 included
        engine.on_exec(filled(seq, 1, 100))

    assert engine.summary()["fills"] == 7 and engine.exec_seq == 7
