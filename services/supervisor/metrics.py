"""Prometheus metrics from what the supervisor already knows (docs/metrics.md names them all).

The supervisor loop builds a View (build_view) a few times a second and hands it to the HTTP
thread; a scrape turns the latest View, and the figures the dashboard fetched from portfolio
and performance (the "book"), into metric families (collect). Nothing here touches a socket or
the supervisor's own state: a scrape never waits on the loop and the loop never waits on a
scrape.

Every heartbeat counter is exported raw as qts_counter_total{service,counter} (or, for the few
that are levels, qts_gauge{service,name}); the families the operators look at first
(messages, decode errors, drops, rejects, broker requests, ...) are derived from the same
counters by their documented prefixes, so a service adds a metric by counting a key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from protocol.enums import TradingState
from protocol.messages import (
    ExecEvent,
    IntentDenied,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from services.runtime.histogram import (
    BOUNDS_US,
    HistogramWireError,
    LatencyHistogram,
    from_wire,
)
from services.supervisor.engine import HeartbeatTable

# heartbeat counters that are levels, not counts (exported as qts_gauge, never as a counter)
GAUGE_KEYS = frozenset(
    {
        "open_orders",
        "broker_down_ms",
        "flatten_epoch",
        "flatten_orders",
        "flatten_positions",
        "flatten_shares",
    }
)
GAUGE_PREFIXES = ("md_age_ms.",)

# derived counter families: prefix of the heartbeat counter key -> (metric, label, help)
PREFIX_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    ("msgs.", "qts_messages", "stream", "Frames received per stream (socket)."),
    ("bad_frames.", "qts_decode_errors", "stream", "Frames that did not decode, per stream."),
    ("rejects.", "qts_venue_rejects", "reason", "Requests the paper venue refused, by code."),
    ("exec.rejects.", "qts_rejects", "reason", "OrderRejected events, by code."),
    ("exec.denials.", "qts_denials", "reason", "IntentDenied events (risk), by code."),
    ("guardrail.", "qts_guardrail_firings", "guardrail", "Guardrail firings, by guardrail."),
)
# single heartbeat counters with a name of their own: key -> (metric, help)
KEY_COUNTERS: dict[str, tuple[str, str]] = {
    "exec.orders": ("qts_orders", "OrderSubmitted events seen on the exec stream."),
    "exec.fills": ("qts_fills", "OrderFilled events seen on the exec stream."),
    "exec.cancels": ("qts_cancels", "OrderCanceled events seen on the exec stream."),
    "reconcile_differences": (
        "qts_reconcile_differences",
        "Differences execution's reconciliation found with the broker.",
    ),
    "reconcile_failures": ("qts_reconcile_failures", "Reconciliations that could not run."),
}
# broker traffic, from execution's counters: key -> (kind label)
BROKER_REQUESTS = {"orders_sent": "order", "cancels_sent": "cancel"}
BROKER_ERRORS = {
    "orders_not_sent": "order_not_sent",
    "cancels_not_sent": "cancel_not_sent",
    "broker_rejects": "order_rejected",
    "cancel_rejects": "cancel_rejected",
    "unknown_outcomes": "unknown_outcome",
}
DROP_SUFFIX = "_dropped"
PNL_KINDS = ("realized", "unrealized", "fees", "taxes", "net")


# the order path's stages, from the Trace an OrderAccepted carries (the same stages as
# performance's STAGES; differences of one host's monotonic stamps, never compared across hosts)
TRACE_STAGES: dict[str, tuple[str, str]] = {
    "strategy": ("observed", "evaluated"),
    "risk": ("evaluated", "decided"),
    "execution": ("decided", "sent"),
    "broker": ("sent", "acked"),
    "tick_to_order": ("observed", "sent"),
    "tick_to_ack": ("observed", "acked"),
}


def count_exec(
    counters: dict[str, int], histograms: dict[str, LatencyHistogram], ev: ExecEvent
) -> None:
    """The supervisor's tally of the exec stream (it subscribes for the guardrails anyway):
    orders, fills, cancels, rejects and risk denials by code, and the stage latencies of
    every accepted order into `histograms` (one LatencyHistogram per stage)."""
    if isinstance(ev, OrderAccepted):
        trace = ev.trace
        for stage, (a, b) in TRACE_STAGES.items():
            start, end = getattr(trace, a), getattr(trace, b)
            if start and end:
                h = histograms.get(stage)
                if h is None:
                    h = histograms[stage] = LatencyHistogram()
                h.observe_ns(end - start)
        return
    if isinstance(ev, OrderSubmitted):
        key = "exec.orders"
    elif isinstance(ev, OrderFilled):
        key = "exec.fills"
    elif isinstance(ev, OrderRejected):
        key = f"exec.rejects.{ev.code}"
    elif isinstance(ev, IntentDenied):
        key = f"exec.denials.{ev.code}"
    elif isinstance(ev, OrderCanceled):
        key = "exec.cancels"
    else:
        return
    counters[key] = counters.get(key, 0) + 1


@dataclass(frozen=True)
class View:
    """What a scrape and the dashboard see: built by the supervisor loop, then only read."""

    built_ns: int
    status: dict[str, Any]  # the supervisor's `status` answer (state, services, guardrails)
    histograms: dict[str, dict[str, list[int]]] = field(default_factory=dict)


def build_view(
    status: dict[str, Any],
    table: HeartbeatTable,
    wall_ns: int,
    own: dict[str, LatencyHistogram] | None = None,
) -> View:
    """`status` must be a fresh dict (cmd_status builds one per call); the histograms are the
    last heartbeats' own lists, which nothing mutates after decoding, and copies of the
    supervisor's `own`."""
    hists = {
        name: dict(view.last.histograms)
        for name, view in table.services.items()
        if view.last is not None and view.last.histograms
    }
    if own:
        hists["supervisor"] = {k: h.wire() for k, h in own.items()}
    return View(built_ns=wall_ns, status=status, histograms=hists)


def is_gauge(key: str) -> bool:
    return key in GAUGE_KEYS or key.startswith(GAUGE_PREFIXES)


class QtsCollector(Collector):
    """One scrape's metric families from a View and the dashboard's book (either may be None
    before the first one is ready: then only what is known is exported)."""

    def __init__(self, view: View | None, book: dict[str, Any] | None) -> None:
        self.view = view
        self.book = book

    def collect(self) -> Iterator[Metric]:
        now_ns = time.time_ns()
        if self.view is not None:
            yield from self._state(self.view, now_ns)
            yield from self._services(self.view)
            yield from self._counters(self.view)
            yield from self._histograms(self.view)
        if self.book is not None:
            yield from self._book(self.book)

    # ------------------------------------------------------------------------------ state
    def _state(self, view: View, now_ns: int) -> Iterator[Metric]:
        s = view.status
        state = GaugeMetricFamily(
            "qts_trading_state",
            "1 for the current trading state, 0 for the others.",
            labels=["state"],
        )
        for st in TradingState:
            state.add_metric([st.value], 1.0 if s.get("state") == st.value else 0.0)
        yield state
        yield GaugeMetricFamily(
            "qts_trading_epoch",
            "The trading state's epoch (+1 on every change).",
            s.get("epoch", 0),
        )
        yield GaugeMetricFamily(
            "qts_trading_state_changed_seconds",
            "Unix time of the last trading-state change.",
            s.get("changed_ns", 0) / 1e9,
        )
        yield GaugeMetricFamily(
            "qts_metrics_view_age_seconds",
            "Age of the supervisor's latest view (grows if the supervisor loop stalls).",
            max(now_ns - view.built_ns, 0) / 1e9,
        )

    def _services(self, view: View) -> Iterator[Metric]:
        services: dict[str, dict[str, Any]] = view.status.get("services", {})
        up = GaugeMetricFamily(
            "qts_up", "1 while the service's heartbeats arrive.", labels=["service"]
        )
        ready = GaugeMetricFamily(
            "qts_service_ready", "1 while the service reports status ready.", labels=["service"]
        )
        age = GaugeMetricFamily(
            "qts_heartbeat_age_seconds",
            "Time since the service's last heartbeat.",
            labels=["service"],
        )
        ack = GaugeMetricFamily(
            "qts_epoch_ack", "The last epoch the service acknowledged.", labels=["service"]
        )
        started = GaugeMetricFamily(
            "qts_service_start_time_seconds", "Unix time the service started.", labels=["service"]
        )
        for name, sv in sorted(services.items()):
            up.add_metric([name], 1.0 if sv.get("alive") else 0.0)
            ready.add_metric([name], 1.0 if sv.get("status") == "ready" else 0.0)
            if sv.get("age_ms") is not None:
                age.add_metric([name], sv["age_ms"] / 1000.0)
            ack.add_metric([name], sv.get("epoch_ack") or 0)
            if sv.get("started_ns"):
                started.add_metric([name], sv["started_ns"] / 1e9)
        yield from (up, ready, age, ack, started)

    # ------------------------------------------------------------------------------ counters
    def _counters(self, view: View) -> Iterator[Metric]:
        services: dict[str, dict[str, Any]] = view.status.get("services", {})
        raw = CounterMetricFamily(
            "qts_counter", "Every heartbeat counter, raw.", labels=["service", "counter"]
        )
        gauge = GaugeMetricFamily(
            "qts_gauge", "Heartbeat values that are levels, raw.", labels=["service", "name"]
        )
        prefixed = {
            prefix: CounterMetricFamily(metric, doc, labels=["service", label])
            for prefix, metric, label, doc in PREFIX_COUNTERS
        }
        keyed = {
            key: CounterMetricFamily(metric, doc, labels=["service"])
            for key, (metric, doc) in KEY_COUNTERS.items()
        }
        drops = CounterMetricFamily(
            "qts_drops",
            "Messages dropped at a full queue or high-water mark, by what was dropped.",
            labels=["service", "what"],
        )
        requests = CounterMetricFamily(
            "qts_broker_requests", "Requests sent to the broker.", labels=["kind"]
        )
        errors = CounterMetricFamily(
            "qts_broker_errors", "Broker requests that failed, by kind.", labels=["kind"]
        )
        open_orders = GaugeMetricFamily("qts_open_orders", "Working orders (execution).")
        broker_down = GaugeMetricFamily(
            "qts_broker_down_seconds", "How long the broker has not answered (0: it answers)."
        )
        md_age = GaugeMetricFamily(
            "qts_md_age_seconds", "Time since the symbol's last market data.", labels=["symbol"]
        )
        for name, sv in sorted(services.items()):
            for key, value in sorted(sv.get("counters", {}).items()):
                if is_gauge(key):
                    gauge.add_metric([name, key], value)
                    if key.startswith("md_age_ms."):
                        md_age.add_metric([key.removeprefix("md_age_ms.")], value / 1000.0)
                    elif name == "execution" and key == "open_orders":
                        open_orders.add_metric([], value)
                    elif name == "execution" and key == "broker_down_ms":
                        broker_down.add_metric([], value / 1000.0)
                    continue
                raw.add_metric([name, key], value)
                for prefix, _m, _l, _d in PREFIX_COUNTERS:
                    if key.startswith(prefix):
                        prefixed[prefix].add_metric([name, key.removeprefix(prefix)], value)
                        break
                if key in keyed:
                    keyed[key].add_metric([name], value)
                if key.endswith(DROP_SUFFIX):
                    drops.add_metric([name, key.removesuffix(DROP_SUFFIX)], value)
                if name == "execution" and key in BROKER_REQUESTS:
                    requests.add_metric([BROKER_REQUESTS[key]], value)
                if name == "execution" and key in BROKER_ERRORS:
                    errors.add_metric([BROKER_ERRORS[key]], value)
        yield from (raw, gauge, *prefixed.values(), *keyed.values(), drops, requests, errors)
        yield from (open_orders, broker_down, md_age)

    def _histograms(self, view: View) -> Iterator[Metric]:
        fam = HistogramMetricFamily(
            "qts_stage_latency_seconds",
            "Latency by stage: the order path's stages measured by the supervisor from the "
            "exec stream, and any histogram a service reports with its heartbeat.",
            labels=["service", "stage"],
        )
        bad = 0
        les = [_le(b) for b in BOUNDS_US] + ["+Inf"]
        for service, hists in sorted(view.histograms.items()):
            for stage, wire in sorted(hists.items()):
                try:
                    cumulative, sum_us = from_wire(wire)
                except HistogramWireError:
                    bad += 1
                    continue
                fam.add_metric(
                    [service, stage],
                    buckets=list(zip(les, (float(c) for c in cumulative), strict=True)),
                    sum_value=sum_us / 1e6,
                )
        yield fam
        yield GaugeMetricFamily(
            "qts_metrics_bad_histograms",
            "Heartbeat histograms left out because their layout does not match.",
            bad,
        )

    # ------------------------------------------------------------------------------ book
    def _book(self, book: dict[str, Any]) -> Iterator[Metric]:
        ok = GaugeMetricFamily(
            "qts_dashboard_fetch_ok",
            "1 if the last fetch from the service answered.",
            labels=["source"],
        )
        for source, info in sorted(book.get("sources", {}).items()):
            ok.add_metric([source], 1.0 if info.get("ok") else 0.0)
        yield ok
        pnl = book.get("pnl")
        if pnl:
            fam = GaugeMetricFamily(
                "qts_pnl_krw", "Account PnL today (portfolio), KRW.", labels=["kind"]
            )
            for kind in PNL_KINDS:
                if kind in pnl:
                    fam.add_metric([kind], pnl[kind])
            yield fam
            for key, doc in (("equity", "Account equity, KRW."), ("cash", "Cash, KRW.")):
                if key in pnl:
                    yield GaugeMetricFamily(f"qts_{key}_krw", doc, pnl[key])
        positions = book.get("positions")
        if positions is not None:
            shares = GaugeMetricFamily(
                "qts_position_shares", "Shares held.", labels=["strategy", "symbol"]
            )
            value = GaugeMetricFamily(
                "qts_position_value_krw", "Market value held, KRW.", labels=["strategy", "symbol"]
            )
            held = 0
            for p in positions:
                shares.add_metric([p["strategy"], p["symbol"]], p["qty"])
                value.add_metric([p["strategy"], p["symbol"]], p.get("market_value", 0))
                if p["strategy"] == "" and p["qty"]:
                    held += 1
            yield from (shares, value)
            yield GaugeMetricFamily(
                "qts_positions", "Symbols the account holds (non-zero positions).", held
            )


def _le(us: int) -> str:
    return repr(us / 1e6)  # what prometheus_client writes: 1e-05, 0.001, 10.0


def render(view: View | None, book: dict[str, Any] | None) -> bytes:
    """The text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QtsCollector(view, book))
    return generate_latest(registry)
