"""Heartbeat histograms, the metrics built from the heartbeat table, and the scrape's text,
parsed back with prometheus-client's own parser."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from protocol import codec
from protocol.enums import Side
from protocol.messages import (
    PROTOCOL_VERSION,
    Heartbeat,
    IntentDenied,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    Trace,
)
from services.runtime.histogram import (
    BOUNDS_US,
    WIRE_LEN,
    HistogramWireError,
    LatencyHistogram,
    from_wire,
)
from services.supervisor.engine import HeartbeatTable
from services.supervisor.metrics import View, build_view, count_exec, is_gauge, render


def hb(service: str, counters: dict[str, int], histograms: dict[str, list[int]] | None = None):
    return Heartbeat(
        service=service,
        pid=100,
        protocol=PROTOCOL_VERSION,
        seq=1,
        started_ns=1_700_000_000_000_000_000,
        ts_ns=1,
        epoch_ack=3,
        status="ready",
        counters=counters,
        histograms=histograms or {},
    )


def scrape(view: View | None, book: dict[str, Any] | None = None) -> dict[str, Any]:
    """name -> {labels tuple -> value} for every sample of the exposition."""
    out: dict[str, Any] = {}
    text = render(view, book).decode()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = tuple(sorted(s.labels.items()))
            out.setdefault(s.name, {})[key] = s.value
    return out


def status(**services: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": "REDUCING",
        "epoch": 7,
        "reason": "test",
        "by": "operator",
        "changed_ns": 2_000_000_000,
        "flatten": False,
        "services": services,
        "guardrails": {},
    }


# ---------------------------------------------------------------------------------- histogram
def test_histogram_buckets_are_inclusive_upper_bounds() -> None:
    h = LatencyHistogram()
    for us in (0, 10, 11, 25, 999_999, 10_000_000, 10_000_001, 5_000_000_000):
        h.observe_us(us)
    h.observe_ns(1_500)  # 1 µs
    h.observe_us(-5)  # a clock step backwards: first bucket, adds 0 to the sum
    wire = h.wire()
    assert len(wire) == WIRE_LEN == len(BOUNDS_US) + 2
    counts = wire[:-1]
    assert counts[0] == 4  # 0, 10, 1, -5 -> <= 10 µs
    assert counts[1] == 2  # 11, 25
    assert counts[BOUNDS_US.index(1_000_000)] == 1
    assert counts[BOUNDS_US.index(10_000_000)] == 1
    assert counts[-1] == 2  # +Inf
    assert h.count == 10
    assert wire[-1] == 0 + 10 + 11 + 25 + 999_999 + 10_000_000 + 10_000_001 + 5_000_000_000 + 1


def test_from_wire_is_cumulative_and_checks_the_layout() -> None:
    h = LatencyHistogram()
    h.observe_us(5)
    h.observe_us(30)
    h.observe_us(30)
    cumulative, sum_us = from_wire(h.wire())
    assert cumulative[:4] == [1, 1, 3, 3]
    assert cumulative[-1] == 3
    assert sum_us == 65
    with pytest.raises(HistogramWireError, match="expected 21"):
        from_wire([1, 2, 3])
    with pytest.raises(HistogramWireError, match="negative"):
        from_wire([-1] + [0] * (WIRE_LEN - 1))


def test_heartbeat_histograms_survive_the_wire_and_old_heartbeats_decode() -> None:
    h = LatencyHistogram()
    h.observe_us(42)
    sent = hb("performance", {"msgs.exec": 3}, {"broker": h.wire()})
    got = codec.decoder("heartbeat").decode(codec.encode(sent))
    assert got.histograms == {"broker": h.wire()}
    # a heartbeat from a build without the field decodes with none
    old = codec.decoder("heartbeat").decode(codec.encode(hb("risk", {})))
    assert old.histograms == {}


# ---------------------------------------------------------------------------------- metrics
def table_with(*beats: Heartbeat) -> HeartbeatTable:
    t = HeartbeatTable(["risk", "execution"], 1.0)
    for b in beats:
        assert t.record(b, now=10.0) is None
    return t


def test_scrape_has_state_services_and_derived_counters() -> None:
    lat = LatencyHistogram()
    for us in (40, 40, 900):
        lat.observe_us(us)
    table = table_with(
        hb(
            "execution",
            {
                "msgs.orders": 12,
                "bad_frames.orders": 2,
                "open_orders": 4,
                "broker_down_ms": 1_500,
                "orders_sent": 9,
                "cancels_sent": 1,
                "orders_not_sent": 2,
                "broker_rejects": 1,
                "reconcile_differences": 3,
            },
        ),
        hb("observer", {"md_age_ms.005930": 250, "intents_dropped": 0}),
        hb("performance", {"heartbeat_dropped": 5}, {"tick_to_ack": lat.wire()}),
    )
    st = status(**table.status(now=10.5, wall_ns=0))
    st["services"]["supervisor"] = {
        "alive": True,
        "status": "ready",
        "age_ms": 0.0,
        "epoch_ack": 7,
        "started_ns": 1,
        "counters": {
            "guardrail.daily_loss": 1,
            "exec.orders": 10,
            "exec.fills": 6,
            "exec.rejects.PRICE_BAND": 2,
            "exec.denials.MAX_QTY": 3,
        },
    }
    m = scrape(build_view(st, table, wall_ns=9_000_000_000_000_000_000))

    state = m["qts_trading_state"]
    assert state[(("state", "REDUCING"),)] == 1.0
    assert state[(("state", "ACTIVE"),)] == 0.0
    assert state[(("state", "HALTED"),)] == 0.0
    assert m["qts_trading_epoch"][()] == 7
    assert m["qts_trading_state_changed_seconds"][()] == 2.0

    svc = lambda name: (("service", name),)  # noqa: E731
    assert m["qts_up"][svc("execution")] == 1.0
    assert m["qts_up"][svc("risk")] == 0.0  # an acknowledger never heard
    assert m["qts_heartbeat_age_seconds"][svc("execution")] == pytest.approx(0.5)
    assert svc("risk") not in m["qts_heartbeat_age_seconds"]
    assert m["qts_epoch_ack"][svc("execution")] == 3
    assert m["qts_service_ready"][svc("observer")] == 1.0

    assert m["qts_counter_total"][(("counter", "msgs.orders"), ("service", "execution"))] == 12
    assert m["qts_messages_total"][(("service", "execution"), ("stream", "orders"))] == 12
    assert m["qts_decode_errors_total"][(("service", "execution"), ("stream", "orders"))] == 2
    assert m["qts_drops_total"][(("service", "performance"), ("what", "heartbeat"))] == 5
    assert m["qts_drops_total"][(("service", "observer"), ("what", "intents"))] == 0
    # levels are gauges, never counters
    assert m["qts_open_orders"][()] == 4
    assert m["qts_broker_down_seconds"][()] == 1.5
    assert m["qts_gauge"][(("name", "open_orders"), ("service", "execution"))] == 4
    assert (("counter", "open_orders"), ("service", "execution")) not in m["qts_counter_total"]
    assert m["qts_md_age_seconds"][(("symbol", "005930"),)] == 0.25
    assert m["qts_broker_requests_total"][(("kind", "order"),)] == 9
    assert m["qts_broker_requests_total"][(("kind", "cancel"),)] == 1
    assert m["qts_broker_errors_total"][(("kind", "order_not_sent"),)] == 2
    assert m["qts_broker_errors_total"][(("kind", "order_rejected"),)] == 1
    assert m["qts_reconcile_differences_total"][svc("execution")] == 3
    sup = "supervisor"
    assert m["qts_guardrail_firings_total"][(("guardrail", "daily_loss"), ("service", sup))] == 1
    assert m["qts_orders_total"][svc(sup)] == 10
    assert m["qts_fills_total"][svc(sup)] == 6
    assert m["qts_rejects_total"][(("reason", "PRICE_BAND"), ("service", sup))] == 2
    assert m["qts_denials_total"][(("reason", "MAX_QTY"), ("service", sup))] == 3

    # the histogram: cumulative buckets in seconds, count and sum
    labels = (("service", "performance"), ("stage", "tick_to_ack"))
    buckets = m["qts_stage_latency_seconds_bucket"]
    assert buckets[(("le", "5e-05"), *labels)] == 2
    assert buckets[(("le", "0.001"), *labels)] == 3
    assert buckets[(("le", "+Inf"), *labels)] == 3
    assert m["qts_stage_latency_seconds_count"][labels] == 3
    assert m["qts_stage_latency_seconds_sum"][labels] == pytest.approx(980e-6)
    assert m["qts_metrics_bad_histograms"][()] == 0


def test_a_histogram_with_another_layout_is_left_out_and_counted() -> None:
    table = table_with(hb("performance", {}, {"broker": [1, 2, 3], "risk": [0] * WIRE_LEN}))
    m = scrape(build_view(status(**table.status(10.0, 0)), table, wall_ns=0))
    assert m["qts_metrics_bad_histograms"][()] == 1
    counts = m["qts_stage_latency_seconds_count"]
    assert list(counts) == [(("service", "performance"), ("stage", "risk"))]


def test_book_gives_pnl_positions_and_fetch_health() -> None:
    book = {
        "sources": {"pnl": {"ok": True, "error": ""}, "orders": {"ok": False, "error": "x"}},
        "pnl": {
            "realized": 1_000,
            "unrealized": -300,
            "fees": 20,
            "taxes": 5,
            "net": 675,
            "equity": 100_000_675,
            "cash": 90_000_000,
        },
        "positions": [
            {"strategy": "", "symbol": "005930", "qty": 10, "market_value": 710_000},
            {"strategy": "scalp", "symbol": "005930", "qty": 10, "market_value": 710_000},
            {"strategy": "", "symbol": "000660", "qty": 0, "market_value": 0},
        ],
    }
    m = scrape(None, book)
    assert m["qts_pnl_krw"][(("kind", "net"),)] == 675
    assert m["qts_pnl_krw"][(("kind", "unrealized"),)] == -300
    assert m["qts_equity_krw"][()] == 100_000_675
    assert m["qts_cash_krw"][()] == 90_000_000
    assert m["qts_positions"][()] == 1  # the account holds one symbol
    assert m["qts_position_shares"][(("strategy", "scalp"), ("symbol", "005930"))] == 10
    assert m["qts_dashboard_fetch_ok"][(("source", "orders"),)] == 0
    assert "qts_trading_state" not in m  # no view yet: nothing invented


def test_view_age_grows_when_the_loop_stops_publishing() -> None:
    view = View(built_ns=0, status=status())
    age = scrape(view)["qts_metrics_view_age_seconds"][()]
    assert age > 1e9  # built at the epoch: decades old
    assert not math.isnan(age)


def test_count_exec_tallies_the_exec_stream() -> None:
    common = {"strategy": "s", "symbol": "005930", "ts_ns": 1}
    counters: dict[str, int] = {}
    hists: dict[str, LatencyHistogram] = {}
    ms = 1_000_000
    events = [
        OrderSubmitted(
            seq=1,
            client_order_id="c1",
            intent_id="i1",
            side=Side.BUY,
            qty=1,
            price=71_000,
            **common,
        ),
        OrderFilled(
            seq=2,
            fill_id="f",
            client_order_id="c1",
            broker_order_no="b",
            side=Side.BUY,
            qty=1,
            price=71_000,
            leaves_qty=0,
            exch_ns=1,
            **common,
        ),
        OrderRejected(
            seq=3,
            client_order_id="c2",
            side=Side.BUY,
            qty=1,
            price=1,
            code="PRICE",
            reason="r",
            **common,
        ),
        OrderRejected(
            seq=4,
            client_order_id="c3",
            side=Side.BUY,
            qty=1,
            price=1,
            code="PRICE",
            reason="r",
            **common,
        ),
        IntentDenied(
            intent_id="i9", side=Side.SELL, qty=1, price=1, code="MAX_QTY", reason="r", **common
        ),
        OrderCanceled(
            seq=5,
            client_order_id="c4",
            broker_order_no="b",
            side=Side.SELL,
            canceled_qty=1,
            reason="r",
            **common,
        ),
    ]
    events += [
        OrderAccepted(
            seq=6,
            client_order_id="c1",
            broker_order_no="b",
            side=Side.BUY,
            qty=1,
            price=71_000,
            trace=Trace(1 * ms, 2 * ms, 3 * ms, 7 * ms, 27 * ms),
            **common,
        ),
        # a trace that never reached the broker's answer: only the stages it has
        OrderAccepted(
            seq=7,
            client_order_id="c5",
            broker_order_no="b",
            side=Side.BUY,
            qty=1,
            price=71_000,
            trace=Trace(observed=5 * ms, evaluated=6 * ms),
            **common,
        ),
    ]
    for ev in events:
        count_exec(counters, hists, ev)
    assert counters == {
        "exec.orders": 1,
        "exec.fills": 1,
        "exec.rejects.PRICE": 2,
        "exec.denials.MAX_QTY": 1,
        "exec.cancels": 1,
    }
    assert {k: (h.count, h.sum_us) for k, h in hists.items()} == {
        "strategy": (2, 2_000),
        "risk": (1, 1_000),
        "execution": (1, 4_000),
        "broker": (1, 20_000),
        "tick_to_order": (1, 6_000),
        "tick_to_ack": (1, 26_000),
    }


def test_the_supervisors_own_histograms_are_in_the_view() -> None:
    own = {"broker": LatencyHistogram()}
    own["broker"].observe_us(300)
    view = build_view(status(), HeartbeatTable([], 1.0), 0, own)
    own["broker"].observe_us(300)  # after the view was built: not in it
    m = scrape(view)
    assert (
        m["qts_stage_latency_seconds_count"][(("service", "supervisor"), ("stage", "broker"))] == 1
    )


@pytest.mark.parametrize(
    ("key", "gauge"),
    [("open_orders", True), ("md_age_ms.005930", True), ("orders_sent", False), ("msgs.md", False)],
)
def test_is_gauge(key: str, gauge: bool) -> None:
    assert is_gauge(key) is gauge


def test_every_metric_is_documented() -> None:
    table = table_with(
        hb(
            "execution",
            {"open_orders": 1, "broker_down_ms": 0, "orders_sent": 1, "broker_rejects": 1},
        ),
        hb("observer", {"md_age_ms.005930": 1, "msgs.md": 1, "bad_frames.md": 1}),
        hb("venue", {"rejects.X": 1, "heartbeat_dropped": 1, "reconcile_failures": 1}),
    )
    st = status(**table.status(10.0, 0))
    st["services"]["supervisor"] = {
        "alive": True,
        "counters": {
            "guardrail.x": 1,
            "exec.orders": 1,
            "exec.fills": 1,
            "exec.cancels": 1,
            "exec.rejects.X": 1,
            "exec.denials.X": 1,
            "reconcile_differences": 1,
        },
    }
    book = {
        "sources": {"pnl": {"ok": True}},
        "pnl": {"net": 1, "equity": 1, "cash": 1},
        "positions": [{"strategy": "", "symbol": "005930", "qty": 1, "market_value": 1}],
    }
    own = {"broker": LatencyHistogram()}
    text = render(build_view(st, table, 0, own), book).decode()
    names = {fam.name for fam in text_string_to_metric_families(text)}
    assert len(names) >= 37
    doc = (Path(__file__).resolve().parents[3] / "docs" / "metrics.md").read_text()
    missing = sorted(n for n in names if f"`{n}" not in doc)
    assert not missing, f"not in docs/metrics.md: {missing}"
