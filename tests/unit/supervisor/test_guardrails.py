"""Every guardrail fires on its breach and not just below it (fake clock, no sockets)."""

from __future__ import annotations

from typing import Any

from protocol.enums import Side, TradingState
from protocol.messages import (
    PROTOCOL_VERSION,
    Heartbeat,
    OrderRejected,
    PortfolioSnapshot,
    Position,
)
from services.runtime.settings import GuardrailSettings
from services.supervisor.guardrails import Guardrails

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
WALL = 1_764_000_000_000_000_000  # 2025-11-24 KST, epoch ns
DAY_NS = 86_400 * 10**9


def guard(**overrides: Any) -> Guardrails:
    return Guardrails(GuardrailSettings(**overrides), ["risk", "execution"])


def snap(
    *,
    equity: int = 100_000_000,
    realized: int = 0,
    unrealized: int = 0,
    fees: int = 0,
    taxes: int = 0,
    positions: list[Position] | None = None,
) -> PortfolioSnapshot:
    return PortfolioSnapshot(
        seq=1,
        ts_ns=WALL,
        exec_seq=0,
        cash=equity,
        equity=equity,
        realized=realized,
        unrealized=unrealized,
        fees=fees,
        taxes=taxes,
        positions=positions or [],
    )


def pos(symbol: str, qty: int, last: int, strategy: str = "") -> Position:
    return Position(
        strategy=strategy,
        symbol=symbol,
        qty=qty,
        cost=qty * last,
        last_price=last,
        realized=0,
        unrealized=0,
        fees=0,
        taxes=0,
    )


def hb(
    service: str, ts_ns: int = WALL, counters: dict[str, int] | None = None, status: str = "ready"
) -> Heartbeat:
    return Heartbeat(
        service=service,
        pid=1,
        protocol=PROTOCOL_VERSION,
        seq=1,
        started_ns=1,
        ts_ns=ts_ns,
        epoch_ack=1,
        status=status,
        counters=counters or {},
    )


def reject(code: str = "INSUFFICIENT_CASH") -> OrderRejected:
    return OrderRejected(
        seq=1,
        client_order_id="c1",
        strategy="pulse",
        symbol="005930",
        side=Side.BUY,
        qty=1,
        price=71_000,
        code=code,
        reason="no",
        ts_ns=WALL,
    )


def names(g: Guardrails, state: TradingState = A, mono: float = 0.0) -> list[str]:
    return [f.name for f in g.evaluate(state, mono, WALL)]


# ---------------------------------------------------------------------------- 1. daily loss
def test_daily_loss_at_limit_then_quiet() -> None:
    g = guard(max_daily_loss=1_000_000)
    g.on_portfolio(snap(realized=-900_000, fees=60_000, taxes=40_000), WALL)  # net -1,000,000
    assert names(g) == []


def test_daily_loss_beyond_limit_then_halts_with_figures() -> None:
    g = guard(max_daily_loss=1_000_000)
    g.on_portfolio(snap(realized=-900_000, unrealized=-1, fees=60_000, taxes=40_000), WALL)
    (f,) = g.evaluate(A, 0.0, WALL)
    assert (f.name, f.action) == ("daily_loss", H)
    assert "1,000,001 KRW exceeds 1,000,000 KRW" in f.text
    st = g.status()["daily_loss"]
    assert st["fired"] and st["at_ns"] == WALL and st["limit"] == {"max_daily_loss": 1_000_000}


def test_daily_loss_when_already_halted_then_not_fired() -> None:
    g = guard(max_daily_loss=1_000)
    g.on_portfolio(snap(realized=-5_000), WALL)
    assert names(g, H) == []
    assert g.status()["daily_loss"] == {
        **g.status()["daily_loss"],
        "fired": False,
        "breached": True,
    }


def test_daily_loss_when_reducing_then_halts() -> None:
    g = guard(max_daily_loss=1_000)
    g.on_portfolio(snap(realized=-5_000), WALL)
    assert names(g, R) == ["daily_loss"]


def test_daily_loss_disabled_then_never_fires() -> None:
    g = guard(max_daily_loss=1_000, daily_loss_enabled=False)
    g.on_portfolio(snap(realized=-5_000_000), WALL)
    assert names(g) == []


# ---------------------------------------------------------------------------- 2. drawdown
def test_drawdown_equal_to_limit_then_quiet_and_beyond_then_halts() -> None:
    g = guard(max_drawdown=500_000)
    g.on_portfolio(snap(equity=101_000_000), WALL)
    g.on_portfolio(snap(equity=100_500_000), WALL + 1)
    assert names(g) == []
    g.on_portfolio(snap(equity=100_499_999), WALL + 2)
    (f,) = g.evaluate(A, 0.0, WALL)
    assert (f.name, f.action) == ("drawdown", H)
    assert "500,001 KRW" in f.text and "101,000,000 KRW" in f.text


def test_drawdown_peak_resets_on_a_new_kst_day() -> None:
    g = guard(max_drawdown=500_000)
    g.on_portfolio(snap(equity=102_000_000), WALL)
    g.on_portfolio(snap(equity=101_000_000), WALL + DAY_NS)  # the next day starts its own peak
    assert names(g) == []


# ---------------------------------------------------------------------------- 3. exposure
def test_gross_exposure_at_limit_then_quiet_and_above_then_reducing() -> None:
    g = guard(max_gross_exposure=10_000_000, max_position_notional=10_000_000)
    rows = [pos("005930", 100, 70_000), pos("000660", -10, 300_000)]  # 7,000,000 + 3,000,000
    rows.append(pos("005930", 100, 70_000, strategy="pulse"))  # strategy rows do not add up
    g.on_portfolio(snap(positions=rows), WALL)
    assert names(g) == []
    g.on_portfolio(snap(positions=[*rows, pos("035420", 1, 1)]), WALL)
    (f,) = g.evaluate(A, 0.0, WALL)
    assert (f.name, f.action) == ("exposure", R)
    assert "gross exposure 10,000,001 KRW exceeds 10,000,000 KRW" in f.text


def test_single_position_notional_above_limit_then_reducing() -> None:
    g = guard(max_position_notional=7_000_000)
    g.on_portfolio(snap(positions=[pos("005930", 100, 70_000)]), WALL)
    assert names(g) == []
    g.on_portfolio(snap(positions=[pos("005930", 101, 70_000)]), WALL)
    (f,) = g.evaluate(A, 0.0, WALL)
    assert f.action is R and "005930 notional 7,070,000 KRW" in f.text


def test_exposure_when_reducing_or_halted_then_not_fired() -> None:
    g = guard(max_position_notional=1)
    g.on_portfolio(snap(positions=[pos("005930", 1, 70_000)]), WALL)
    assert names(g, R) == [] and names(g, H) == []
    assert names(g, A) == ["exposure"]


# ---------------------------------------------------------------------------- 4. heartbeat loss
def test_critical_service_silent_at_limit_then_quiet_and_beyond_then_halts() -> None:
    g = guard(heartbeat_loss_ms=3_000)
    g.on_heartbeat(hb("execution"), 10.0, WALL)
    g.on_heartbeat(hb("risk"), 12.0, WALL)
    assert names(g, mono=13.0) == []
    (f,) = g.evaluate(A, 13.01, WALL)
    assert (f.name, f.action) == ("heartbeat_loss", H)
    assert f.text == "execution silent for 3.0 s (limit 3.0 s)"


def test_critical_service_never_seen_or_not_critical_then_quiet() -> None:
    g = guard(heartbeat_loss_ms=3_000)
    g.on_heartbeat(hb("strategy"), 0.0, WALL)
    assert names(g, mono=100.0) == []


def test_critical_service_back_within_limit_then_quiet() -> None:
    g = guard(heartbeat_loss_ms=3_000)
    g.on_heartbeat(hb("risk"), 0.0, WALL)
    g.on_heartbeat(hb("risk"), 2.5, WALL)  # a restart that came back in time
    assert names(g, mono=5.0) == []


# ---------------------------------------------------------------------------- 5. reject storm
def test_rejects_below_count_then_quiet_and_at_count_then_halts() -> None:
    g = guard(reject_storm_count=5, reject_storm_window_s=10.0)
    for i in range(4):
        g.on_reject(reject(), float(i))
    assert names(g, mono=4.0) == []
    g.on_reject(reject("PRICE_LIMIT"), 4.0)
    (f,) = g.evaluate(A, 4.0, WALL)
    assert (f.name, f.action) == ("reject_storm", H)
    assert "5 orders rejected within 10 s" in f.text and "INSUFFICIENT_CASH x4" in f.text
    assert names(g, mono=4.1) == []  # the window was cleared: a resume is not undone by it


def test_rejects_spread_wider_than_window_then_quiet() -> None:
    g = guard(reject_storm_count=5, reject_storm_window_s=10.0)
    for i in range(5):
        g.on_reject(reject(), i * 3.0)  # 0, 3, ..., 12: never 5 within 10 s
    assert names(g, mono=12.0) == []


def test_rejects_of_orders_never_sent_then_not_counted() -> None:
    g = guard(reject_storm_count=3)
    for _ in range(5):
        g.on_reject(reject("BROKER_UNAVAILABLE"), 1.0)  # a broker restart: nothing left
    assert names(g, mono=1.0) == []
    for _ in range(3):
        g.on_reject(reject("BROKER_REJECT"), 1.0)
    assert names(g, mono=1.0) == ["reject_storm"]


# ---------------------------------------------------------------------------- 6. stale data
def test_market_data_age_at_limit_then_quiet_and_beyond_then_halts() -> None:
    g = guard(stale_md_ms=5_000)
    g.on_heartbeat(hb("observer", counters={"md_age_ms.005930": 5_000, "x": 1}), 1.0, WALL)
    assert names(g, mono=1.0) == []
    g.on_heartbeat(hb("observer", counters={"md_age_ms.005930": 5_001}), 1.1, WALL)
    (f,) = g.evaluate(A, 1.1, WALL)
    assert (f.name, f.action) == ("stale_md", H)
    assert f.text.startswith("no market data for 005930 for 5001 ms")


def test_observer_silent_then_its_silence_adds_to_the_age() -> None:
    g = guard(stale_md_ms=5_000)
    g.on_heartbeat(hb("observer", counters={"md_age_ms.005930": 10}), 1.0, WALL)
    assert names(g, mono=5.9) == []
    assert names(g, mono=6.1) == ["stale_md"]


def test_stale_data_when_reducing_or_source_done_then_quiet() -> None:
    g = guard(stale_md_ms=5_000)
    g.on_heartbeat(hb("observer", counters={"md_age_ms.005930": 9_000}), 1.0, WALL)
    assert names(g, R) == []
    g.on_heartbeat(hb("observer", counters={"md_age_ms.005930": 9_000}, status="done"), 1.1, WALL)
    assert names(g, A, 1.1) == []


# ---------------------------------------------------------------------------- 7. clock skew
def test_clock_skew_at_limit_then_quiet_and_beyond_then_warns_without_action() -> None:
    g = guard(max_clock_skew_ms=500)
    g.on_heartbeat(hb("risk", ts_ns=WALL - 500_000_000), 0.0, WALL)
    assert names(g) == []
    g = guard(max_clock_skew_ms=500)
    g.on_heartbeat(hb("risk", ts_ns=WALL - 501_000_000), 0.1, WALL)
    (f,) = g.evaluate(H, 0.1, WALL)  # warn-only fires whatever the state
    assert (f.name, f.action) == ("clock_skew", None)
    assert f.text == "risk clock -501 ms from the supervisor's (limit 500 ms)"
    assert names(g, mono=0.2) == []  # repeated at most every 10 s
    assert g.status()["clock_skew"]["breached"] is True
    g.on_heartbeat(hb("risk", ts_ns=WALL - 501_000_000), 10.2, WALL)
    assert names(g, mono=10.2) == ["clock_skew"]


def test_clock_ahead_beyond_limit_then_warns() -> None:
    g = guard(max_clock_skew_ms=500)
    g.on_heartbeat(hb("risk", ts_ns=WALL + 501_000_000), 0.0, WALL)
    assert names(g) == ["clock_skew"]


def test_one_heartbeat_delayed_in_a_queue_then_not_taken_for_skew() -> None:
    g = guard(max_clock_skew_ms=500)
    g.on_heartbeat(hb("execution", ts_ns=WALL - 2_000_000), 0.0, WALL)
    g.on_heartbeat(hb("execution", ts_ns=WALL - 900_000_000), 0.1, WALL)  # a busy moment
    assert names(g, mono=0.1) == []


def test_skewed_service_gone_quiet_then_no_longer_counted() -> None:
    g = guard(max_clock_skew_ms=500, heartbeat_loss_ms=3_000)
    g.on_heartbeat(hb("strategy", ts_ns=WALL + 900_000_000), 0.0, WALL)
    assert names(g, mono=3.1) == []


def test_clock_skew_configured_to_halt_then_halts() -> None:
    g = guard(max_clock_skew_ms=500, clock_skew_action="HALTED")
    g.on_heartbeat(hb("execution", ts_ns=WALL + 2_000_000_000), 0.0, WALL)
    (f,) = g.evaluate(A, 0.0, WALL)
    assert f.action is H and g.status()["clock_skew"]["action"] == "HALTED"
    assert names(g, H, 0.0) == []


# ---------------------------------------------------------------------------- status
def test_status_lists_every_guardrail_unfired() -> None:
    st = guard().status()
    assert set(st) == {
        "daily_loss",
        "drawdown",
        "exposure",
        "heartbeat_loss",
        "reject_storm",
        "stale_md",
        "clock_skew",
    }
    assert all(v["fired"] is False and v["last"] == "" and v["at_ns"] == 0 for v in st.values())
    assert st["exposure"]["action"] == "REDUCING" and st["clock_skew"]["action"] == "warn"
