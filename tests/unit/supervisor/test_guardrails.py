"""Every guardrail fires on its breach and not just below it (fake clock, no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

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
    service: str,
    ts_ns: int = WALL,
    counters: dict[str, int] | None = None,
    status: str = "ready",
    pid: int = 1,
) -> Heartbeat:
    return Heartbeat(
        service=service,
        pid=pid,
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
        "broker_disconnect",
        "reconcile_differences",
    }
    assert all(v["fired"] is False and v["last"] == "" and v["at_ns"] == 0 for v in st.values())
    assert st["exposure"]["action"] == "REDUCING" and st["clock_skew"]["action"] == "warn"
    assert st["broker_disconnect"]["action"] == "HALTED"
    assert st["reconcile_differences"]["action"] == "REDUCING"


def test_firing_carries_its_figures_into_status() -> None:
    g = guard(max_drawdown=1_000)
    g.on_portfolio(snap(equity=100_000), WALL)
    g.on_portfolio(snap(equity=98_999), WALL)
    (f,) = g.evaluate(A, 0.0, WALL)
    figures = {"drawdown": 1_001, "peak_equity": 100_000, "equity": 98_999, "max_drawdown": 1_000}
    assert f.figures == figures and g.status()["drawdown"]["figures"] == figures


# ---------------------------------------------------------------------------- 8. broker disconnect
def broker(down_ms: int, pid: int = 1) -> Heartbeat:
    return hb("execution", counters={"broker_down_ms": down_ms}, pid=pid)


def test_broker_down_at_grace_then_quiet_and_beyond_then_halts() -> None:
    g = guard(broker_disconnect_grace_ms=10_000)
    g.on_heartbeat(broker(9_000), 5.0, WALL)
    assert names(g, mono=6.0) == []  # 9 s reported + 1 s since = the grace, not beyond it
    (f,) = g.evaluate(A, 6.001, WALL)
    assert (f.name, f.action) == ("broker_disconnect", H)
    assert f.text == "broker not answering execution for 10.0 s (grace 10.0 s)"
    assert f.figures == {"broker_down_ms": 10_001, "broker_disconnect_grace_ms": 10_000}


def test_broker_back_before_grace_then_quiet() -> None:
    g = guard(broker_disconnect_grace_ms=10_000, heartbeat_loss_enabled=False)
    g.on_heartbeat(broker(9_900), 0.0, WALL)
    g.on_heartbeat(broker(0), 0.1, WALL)  # answered again
    assert names(g, mono=60.0) == []


def test_broker_connectivity_never_reported_then_quiet() -> None:
    g = guard(broker_disconnect_grace_ms=1, heartbeat_loss_enabled=False)
    g.on_heartbeat(hb("execution"), 0.0, WALL)  # an adapter that does not report it
    assert names(g, mono=60.0) == []


def test_broker_disconnect_configured_to_reduce_then_reduces_once() -> None:
    g = guard(broker_disconnect_grace_ms=1_000, broker_disconnect_action="REDUCING")
    g.on_heartbeat(broker(5_000), 0.0, WALL)
    (f,) = g.evaluate(A, 0.0, WALL)
    assert f.action is R and g.status()["broker_disconnect"]["action"] == "REDUCING"
    assert names(g, R) == [] and names(g, H) == []


def test_broker_disconnect_bad_action_then_config_error() -> None:
    with pytest.raises(ValidationError, match="broker_disconnect_action"):
        GuardrailSettings(broker_disconnect_action="warn")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- 9. reconciliation
def recon(n: int, pid: int = 1) -> Heartbeat:
    return hb("execution", counters={"reconcile_differences": n}, pid=pid)


def test_reconcile_differences_at_limit_then_quiet_and_beyond_then_reduces() -> None:
    g = guard(max_reconcile_differences=3)
    g.on_heartbeat(recon(2), 0.0, WALL)
    g.on_heartbeat(recon(3), 0.1, WALL)  # a running counter: 3 in all, not 5
    assert names(g) == []
    g.on_heartbeat(recon(4), 0.2, WALL)
    (f,) = g.evaluate(A, 0.2, WALL)
    assert (f.name, f.action) == ("reconcile_differences", R)
    assert f.figures == {"differences": 4, "max_reconcile_differences": 3}
    # acted on: an operator's resume is not undone by the same differences
    g.on_heartbeat(recon(4), 0.3, WALL)
    assert names(g) == []


def test_reconcile_differences_across_an_execution_restart_then_added() -> None:
    g = guard(max_reconcile_differences=3)
    g.on_heartbeat(recon(3, pid=10), 0.0, WALL)
    g.on_heartbeat(recon(1, pid=11), 1.0, WALL)  # a new process counts from 0 again
    assert [f.figures["differences"] for f in g.evaluate(A, 1.0, WALL)] == [4]


def test_reconcile_differences_zero_limit_then_first_difference_reduces() -> None:
    g = guard(max_reconcile_differences=0)
    g.on_heartbeat(recon(0), 0.0, WALL)
    assert names(g) == []
    g.on_heartbeat(recon(1), 0.1, WALL)
    assert names(g) == ["reconcile_differences"]


def test_reconcile_differences_on_a_new_day_then_count_restarts() -> None:
    g = guard(max_reconcile_differences=3)
    g.on_portfolio(snap(), WALL)
    g.on_heartbeat(recon(3), 0.0, WALL)
    g.on_portfolio(snap(), WALL + DAY_NS)
    g.on_heartbeat(recon(4), 0.1, WALL + DAY_NS)
    assert names(g) == []


# ---------------------------------------------------------------------------- day state
def saved(g: Guardrails, mono: float, wall_ns: int) -> dict[str, Any]:
    return json.loads(json.dumps(g.day_state(mono, wall_ns)))  # as it goes through the file


def test_restart_on_the_same_day_then_keeps_the_peak_and_fires() -> None:
    g = guard(max_drawdown=1_000)
    g.on_portfolio(snap(equity=105_000), WALL)
    g.on_portfolio(snap(equity=104_500), WALL)
    state = saved(g, 50.0, WALL)
    assert not g.dirty
    fresh = guard(max_drawdown=1_000)
    assert "peak equity 105,000 KRW" in fresh.restore(state, 7.0, WALL + 60 * 10**9)
    fresh.on_portfolio(snap(equity=103_999), WALL + 61 * 10**9)
    (f,) = fresh.evaluate(A, 8.0, WALL)
    assert f.figures["peak_equity"] == 105_000 and f.figures["drawdown"] == 1_001


def test_restart_without_state_then_the_first_snapshot_is_the_peak() -> None:
    g = guard(max_drawdown=1_000)
    g.on_portfolio(snap(equity=103_999), WALL)
    assert names(g) == []


def test_restart_on_another_day_then_starts_afresh() -> None:
    g = guard(max_drawdown=1_000, max_reconcile_differences=0)
    g.on_portfolio(snap(equity=105_000), WALL)
    g.on_heartbeat(recon(5, pid=9), 0.0, WALL)
    state = saved(g, 0.0, WALL)
    fresh = guard(max_drawdown=1_000, max_reconcile_differences=0, clock_skew_enabled=False)
    assert "new day" in fresh.restore(state, 0.0, WALL + DAY_NS)
    fresh.on_portfolio(snap(equity=103_000), WALL + DAY_NS)
    fresh.on_heartbeat(recon(5, pid=9), 0.0, WALL + DAY_NS)  # the same process: nothing new
    assert fresh.evaluate(A, 0.0, WALL + DAY_NS) == []


def test_restart_keeps_the_reject_window_by_age() -> None:
    g = guard(reject_storm_count=3, reject_storm_window_s=10.0)
    g.on_reject(reject(), 100.0)
    g.on_reject(reject(), 104.0)
    state = saved(g, 105.0, WALL)  # ages 5 s and 1 s
    fresh = guard(reject_storm_count=3, reject_storm_window_s=10.0)
    fresh.restore(state, 0.0, WALL + 2 * 10**9)  # 2 s later: ages 7 s and 3 s
    fresh.on_reject(reject(), 0.0)
    assert names(fresh, mono=0.0) == ["reject_storm"]
    fresh2 = guard(reject_storm_count=3, reject_storm_window_s=10.0)
    fresh2.restore(state, 0.0, WALL + 6 * 10**9)  # ages 11 s and 7 s: the first is gone
    fresh2.on_reject(reject(), 0.0)
    assert names(fresh2, mono=0.0) == []


def test_restart_keeps_firings_and_the_reconcile_baseline() -> None:
    g = guard(max_reconcile_differences=1)
    g.on_heartbeat(recon(2, pid=7), 0.0, WALL)
    assert names(g) == ["reconcile_differences"]
    g.on_heartbeat(recon(3, pid=7), 0.1, WALL)
    fresh = guard(max_reconcile_differences=1)
    fresh.restore(saved(g, 0.1, WALL), 0.0, WALL)
    st = fresh.status()["reconcile_differences"]
    assert st["fired"] and st["count"] == 1 and st["figures"]["differences"] == 2
    fresh.on_heartbeat(recon(3, pid=7), 0.0, WALL)  # already counted before the restart
    assert names(fresh) == []
    fresh.on_heartbeat(recon(4, pid=7), 0.0, WALL)
    assert names(fresh) == ["reconcile_differences"]


def test_restore_malformed_then_error() -> None:
    with pytest.raises(KeyError):
        guard().restore({"day": "2025-11-24"}, 0.0, WALL)
    with pytest.raises(ValueError):
        guard().restore({"day": "yesterday", "recon_pid": 1, "recon_last": 0}, 0.0, WALL)
