"""Counts, round trips, drawdown and stage latencies from the exec and portfolio streams (pure).

Latency comes from the Trace carried by real OrderAccepted events (monotonic ns, one clock per
host), recorded in microseconds in HDR histograms so p99.9 stays exact at any volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from protocol.messages import (
    ExecEvent,
    IntentDenied,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PortfolioSnapshot,
    Trace,
)

TOTAL = ""
# stage -> (from, to) Trace fields
STAGES: dict[str, tuple[str, str]] = {
    "strategy": ("observed", "evaluated"),
    "risk": ("evaluated", "decided"),
    "execution": ("decided", "sent"),
    "broker": ("sent", "acked"),
    "tick_to_order": ("observed", "sent"),
    "tick_to_ack": ("observed", "acked"),
}
MAX_US = 3_600_000_000  # one hour: anything above is clamped, it is a broken clock anyway


@dataclass
class Counts:
    orders: int = 0
    fills: int = 0
    rejects: int = 0
    cancels: int = 0
    turnover: int = 0
    denials: dict[str, int] = field(default_factory=dict)
    wins: list[int] = field(default_factory=list)
    losses: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        closed = len(self.wins) + len(self.losses)
        return {
            "orders": self.orders,
            "fills": self.fills,
            "rejects": self.rejects,
            "denials": dict(self.denials),
            "cancels": self.cancels,
            "turnover": self.turnover,
            "round_trips": closed,
            "hit_rate": len(self.wins) / closed if closed else 0.0,
            "avg_win": sum(self.wins) // len(self.wins) if self.wins else 0,
            "avg_loss": sum(self.losses) // len(self.losses) if self.losses else 0,
        }


def stage_latencies_ns(trace: Trace) -> dict[str, int]:
    """Each stage whose two stamps are set (non-zero), in ns."""
    out = {}
    for stage, (a, b) in STAGES.items():
        start, end = getattr(trace, a), getattr(trace, b)
        if start and end:
            out[stage] = end - start
    return out


class PerformanceEngine:
    def __init__(self) -> None:
        self.exec_seq = 0
        self.counts: dict[str, Counts] = {TOTAL: Counts()}
        self.hist = {s: HdrHistogram(1, MAX_US, 3) for s in STAGES}
        self._fill_ids: set[str] = set()
        self._seqs: set[int] = set()
        self._open: dict[tuple[str, str], int] = {}  # (strategy, symbol) -> realized at open
        self._flat: dict[tuple[str, str], int] = {}  # realized when last seen flat
        self.snapshot: PortfolioSnapshot | None = None
        self.peak_equity = 0
        self.max_drawdown = 0

    def _counts(self, strategy: str) -> tuple[Counts, Counts]:
        c = self.counts.get(strategy)
        if c is None:
            c = self.counts[strategy] = Counts()
        return c, self.counts[TOTAL]

    # ------------------------------------------------------------------------------ exec
    def on_exec(self, ev: ExecEvent) -> bool:
        """Count one journal event; False for a replay (seq already seen)."""
        # live events are counted even while the journal catch-up is pending (execution may be
        # down), so events arrive out of order: dedupe by the set of seqs, not a watermark
        if ev.seq:
            if ev.seq in self._seqs:
                return False
            self._seqs.add(ev.seq)
            self.exec_seq = max(self.exec_seq, ev.seq)
        for c in self._counts(ev.strategy):
            if isinstance(ev, OrderSubmitted):
                c.orders += 1
            elif isinstance(ev, OrderFilled):
                if ev.fill_id in self._fill_ids:
                    return False
                c.fills += 1
                c.turnover += ev.qty * ev.price
            elif isinstance(ev, OrderRejected):
                c.rejects += 1
            elif isinstance(ev, IntentDenied):
                c.denials[ev.code] = c.denials.get(ev.code, 0) + 1
            elif isinstance(ev, OrderCanceled):
                c.cancels += 1
        if isinstance(ev, OrderFilled):
            self._fill_ids.add(ev.fill_id)
        elif isinstance(ev, OrderAccepted):
            self.record_trace(ev.trace)
        return True

    def record_trace(self, trace: Trace) -> None:
        for stage, ns in stage_latencies_ns(trace).items():
            us = min(max(ns // 1000, 1), MAX_US)  # sub-µs is recorded as 1 µs (HDR floor)
            self.hist[stage].record_value(us)

    # ------------------------------------------------------------------------------ portfolio
    def on_snapshot(self, snap: PortfolioSnapshot) -> None:
        if self.snapshot is not None and snap.seq <= self.snapshot.seq and snap.seq != 1:
            return  # stale or duplicate (seq 1 again: portfolio restarted, accept)
        self.snapshot = snap
        if snap.equity > self.peak_equity:
            self.peak_equity = snap.equity
        self.max_drawdown = max(self.max_drawdown, self.peak_equity - snap.equity)
        for p in snap.positions:
            if p.strategy == TOTAL:
                continue
            key = (p.strategy, p.symbol)
            if p.qty != 0:
                # the trip began when the position was last flat: realized then is its baseline
                self._open.setdefault(key, self._flat.get(key, 0))
                continue
            self._flat[key] = p.realized
            if key in self._open:
                # the position is flat again: one round trip, PnL = realized since it opened
                pnl = p.realized - self._open.pop(key)
                for c in self._counts(p.strategy):
                    (c.wins if pnl > 0 else c.losses).append(pnl)

    # ------------------------------------------------------------------------------ report
    def pnl(self, strategy: str = TOTAL) -> dict[str, int]:
        snap = self.snapshot
        realized = unrealized = fees = taxes = 0
        if snap is not None:
            for p in snap.positions:
                if p.strategy == strategy:
                    realized += p.realized
                    unrealized += p.unrealized
                    fees += p.fees
                    taxes += p.taxes
        out = {
            "realized": realized,
            "unrealized": unrealized,
            "fees": fees,
            "taxes": taxes,
            "net": realized + unrealized - fees - taxes,
        }
        if strategy == TOTAL:
            out["cash"] = snap.cash if snap else 0
            out["equity"] = snap.equity if snap else 0
            out["max_drawdown"] = self.max_drawdown
        return out

    def latency(self) -> dict[str, dict[str, int]]:
        out = {}
        for stage, h in self.hist.items():
            n = h.get_total_count()
            out[stage] = {
                "count": n,
                "p50": h.get_value_at_percentile(50) if n else 0,
                "p99": h.get_value_at_percentile(99) if n else 0,
                "p999": h.get_value_at_percentile(99.9) if n else 0,
                "max": h.get_max_value() if n else 0,
            }
        return out

    def summary(self) -> dict[str, Any]:
        out = self.counts[TOTAL].as_dict()
        out["pnl"] = self.pnl()
        out["by_strategy"] = {
            s: {**c.as_dict(), "pnl": self.pnl(s)} for s, c in sorted(self.counts.items()) if s
        }
        out["latency_us"] = self.latency()
        out["exec_seq"] = self.exec_seq
        return out
