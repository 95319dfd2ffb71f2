"""Counts, round trips, PnL statistics and stage latencies from the exec and portfolio streams.

Pure: events in, figures out. Latency comes from the Trace carried by real OrderAccepted events
(monotonic ns, one clock per host), recorded in microseconds in HDR histograms so p99.9 stays
exact at any volume. Everything is kept twice: since the start (the journal's replay included),
which `summary` reports, and by KST trading day, which the end-of-day report reads.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

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

KST = ZoneInfo("Asia/Seoul")
TOTAL = ""
# stage -> (from, to) Trace fields; "broker" is the broker round trip (sent -> answer)
STAGES: dict[str, tuple[str, str]] = {
    "strategy": ("observed", "evaluated"),
    "risk": ("evaluated", "decided"),
    "execution": ("decided", "sent"),
    "broker": ("sent", "acked"),
    "tick_to_order": ("observed", "sent"),
    "tick_to_ack": ("observed", "acked"),
}
MAX_US = 3_600_000_000  # one hour: anything above is clamped, it is a broken clock anyway
SHARPE_BUCKET_S = 60  # intraday returns are taken over one-minute buckets
BUCKETS_PER_YEAR = 252 * 390  # 252 sessions of 6.5 h (09:00-15:30) in minutes
CURVE_STEP_NS = 1_000_000_000  # the equity curve keeps at most one point a second


def kst_date(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns / 1e9, KST).date()


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
        won, lost = sum(self.wins), -sum(self.losses)
        return {
            "orders": self.orders,
            "fills": self.fills,
            "rejects": self.rejects,
            "denials": dict(self.denials),
            "cancels": self.cancels,
            "turnover": self.turnover,
            "round_trips": closed,
            "hit_rate": len(self.wins) / closed if closed else 0.0,
            "avg_win": won // len(self.wins) if self.wins else 0,
            "avg_loss": -(lost // len(self.losses)) if self.losses else 0,
            # gross won / gross lost over round trips; None when nothing was lost
            "profit_factor": won / lost if lost else None,
        }


def new_histograms() -> dict[str, HdrHistogram]:
    return {s: HdrHistogram(1, MAX_US, 3) for s in STAGES}


def stage_latencies_ns(trace: Trace) -> dict[str, int]:
    """Each stage whose two stamps are set (non-zero), in ns."""
    out = {}
    for stage, (a, b) in STAGES.items():
        start, end = getattr(trace, a), getattr(trace, b)
        if start and end:
            out[stage] = end - start
    return out


def latency_table(hist: dict[str, HdrHistogram]) -> dict[str, dict[str, int]]:
    out = {}
    for stage, h in hist.items():
        n = h.get_total_count()
        out[stage] = {
            "count": n,
            "p50": h.get_value_at_percentile(50) if n else 0,
            "p99": h.get_value_at_percentile(99) if n else 0,
            "p999": h.get_value_at_percentile(99.9) if n else 0,
            "max": h.get_max_value() if n else 0,
        }
    return out


def max_drawdown(values: list[int]) -> int:
    """The largest fall from a running peak, in won (0 for a curve that never falls)."""
    peak, worst = None, 0
    for v in values:
        peak = v if peak is None or v > peak else peak
        worst = max(worst, peak - v)
    return worst


def sharpe(points: list[tuple[int, int]], capital: int) -> dict[str, float | None]:
    """Sharpe of intraday returns: net PnL sampled at the end of each one-minute bucket (carried
    forward over quiet minutes), returns = change / capital. Risk-free rate 0. `per_bucket` is
    mean / sample std; `annualized` scales it by sqrt(buckets a year). None below two returns
    or with a flat curve."""
    if capital <= 0 or not points:
        return {"per_bucket": None, "annualized": None, "returns": 0}
    step = SHARPE_BUCKET_S * 1_000_000_000
    last_of: dict[int, int] = {}
    for ts, value in points:
        last_of[ts // step] = value
    first, end = min(last_of), max(last_of)
    series, value = [], last_of[first]
    for b in range(first, end + 1):
        value = last_of.get(b, value)
        series.append(value)
    rets = [(b - a) / capital for a, b in itertools.pairwise(series)]
    if len(rets) < 2:
        return {"per_bucket": None, "annualized": None, "returns": len(rets)}
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
    if var <= 0:
        return {"per_bucket": None, "annualized": None, "returns": len(rets)}
    s = mean / math.sqrt(var)
    return {"per_bucket": s, "annualized": s * math.sqrt(BUCKETS_PER_YEAR), "returns": len(rets)}


def net_by_strategy(snap: PortfolioSnapshot) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in snap.positions:
        out[p.strategy] = out.get(p.strategy, 0) + p.realized + p.unrealized - p.fees - p.taxes
    out.setdefault(TOTAL, snap.realized + snap.unrealized - snap.fees - snap.taxes)
    return out


def pnl_rows(snap: PortfolioSnapshot | None, strategy: str = TOTAL) -> dict[str, int]:
    realized = unrealized = fees = taxes = 0
    if snap is not None:
        for p in snap.positions:
            if p.strategy == strategy:
                realized += p.realized
                unrealized += p.unrealized
                fees += p.fees
                taxes += p.taxes
    return {
        "realized": realized,
        "unrealized": unrealized,
        "gross": realized + unrealized,
        "fees": fees,
        "taxes": taxes,
        "costs": fees + taxes,
        "net": realized + unrealized - fees - taxes,
    }


@dataclass
class Day:
    """One KST trading day: what the end-of-day report shows."""

    counts: dict[str, Counts] = field(default_factory=lambda: {TOTAL: Counts()})
    hist: dict[str, HdrHistogram] = field(default_factory=new_histograms)
    # (ts_ns, strategy, symbol, side, qty, price)
    fills: list[tuple[int, str, str, str, int, int]] = field(default_factory=list)
    # (ts_ns, equity, net PnL by strategy, TOTAL included)
    curve: list[tuple[int, int, dict[str, int]]] = field(default_factory=list)
    snapshot: PortfolioSnapshot | None = None


class PerformanceEngine:
    def __init__(self, capital: int = 0) -> None:
        self.capital = capital  # the account's opening cash: the base of intraday returns
        self.exec_seq = 0
        self.counts: dict[str, Counts] = {TOTAL: Counts()}
        self.hist = new_histograms()
        self.days: dict[dt.date, Day] = {}
        self._fill_ids: set[str] = set()
        self._seqs: set[int] = set()
        self._open: dict[tuple[str, str], int] = {}  # (strategy, symbol) -> realized at open
        self._flat: dict[tuple[str, str], int] = {}  # realized when last seen flat
        self.snapshot: PortfolioSnapshot | None = None
        self.peak_equity = 0
        self.max_drawdown = 0

    def day(self, date: dt.date) -> Day:
        d = self.days.get(date)
        if d is None:
            d = self.days[date] = Day()
        return d

    def _counts(self, strategy: str, day: Day) -> list[Counts]:
        out = []
        for table in (self.counts, day.counts):
            c = table.get(strategy)
            if c is None:
                c = table[strategy] = Counts()
            out += [c, table[TOTAL]] if strategy != TOTAL else [c]
        return out

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
        if isinstance(ev, OrderFilled) and ev.fill_id in self._fill_ids:
            return False
        day = self.day(kst_date(ev.ts_ns))
        for c in self._counts(ev.strategy, day):
            if isinstance(ev, OrderSubmitted):
                c.orders += 1
            elif isinstance(ev, OrderFilled):
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
            day.fills.append(
                (ev.exch_ns or ev.ts_ns, ev.strategy, ev.symbol, ev.side.value, ev.qty, ev.price)
            )
        elif isinstance(ev, OrderAccepted):
            self.record_trace(ev.trace, day)
        return True

    def record_trace(self, trace: Trace, day: Day | None = None) -> None:
        for stage, ns in stage_latencies_ns(trace).items():
            us = min(max(ns // 1000, 1), MAX_US)  # sub-µs is recorded as 1 µs (HDR floor)
            self.hist[stage].record_value(us)
            if day is not None:
                day.hist[stage].record_value(us)

    # ------------------------------------------------------------------------------ portfolio
    def on_snapshot(self, snap: PortfolioSnapshot) -> None:
        if self.snapshot is not None and snap.seq <= self.snapshot.seq and snap.seq != 1:
            return  # stale or duplicate (seq 1 again: portfolio restarted, accept)
        self.snapshot = snap
        if snap.equity > self.peak_equity:
            self.peak_equity = snap.equity
        self.max_drawdown = max(self.max_drawdown, self.peak_equity - snap.equity)
        day = self.day(kst_date(snap.ts_ns))
        day.snapshot = snap
        point = (snap.ts_ns, snap.equity, net_by_strategy(snap))
        if day.curve and snap.ts_ns // CURVE_STEP_NS == day.curve[-1][0] // CURVE_STEP_NS:
            day.curve[-1] = point  # the same second as the last point: keep the latest
        else:
            day.curve.append(point)
        self._round_trips(snap, day)

    def _round_trips(self, snap: PortfolioSnapshot, day: Day) -> None:
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
                for c in self._counts(p.strategy, day):
                    (c.wins if pnl > 0 else c.losses).append(pnl)

    # ------------------------------------------------------------------------------ report
    def pnl(self, strategy: str = TOTAL) -> dict[str, int]:
        snap = self.snapshot
        out = pnl_rows(snap, strategy)
        if strategy == TOTAL:
            out["cash"] = snap.cash if snap else 0
            out["equity"] = snap.equity if snap else 0
            out["max_drawdown"] = self.max_drawdown
        return out

    def latency(self) -> dict[str, dict[str, int]]:
        return latency_table(self.hist)

    def summary(self) -> dict[str, Any]:
        """Since the start (journal replay included): what `qts-ctl pnl` and the bench read."""
        out = self.counts[TOTAL].as_dict()
        out["pnl"] = self.pnl()
        out["by_strategy"] = {
            s: {**c.as_dict(), "pnl": self.pnl(s)} for s, c in sorted(self.counts.items()) if s
        }
        out["latency_us"] = self.latency()
        out["exec_seq"] = self.exec_seq
        out["days"] = sorted(d.isoformat() for d in self.days)
        return out

    def _day_stats(self, day: Day, strategy: str) -> dict[str, Any]:
        c = day.counts.get(strategy, Counts())
        points = [(ts, nets.get(strategy, 0)) for ts, _, nets in day.curve]
        out: dict[str, Any] = c.as_dict()
        out["pnl"] = pnl_rows(day.snapshot, strategy)
        out["max_drawdown"] = max_drawdown([v for _, v in points])
        out["sharpe"] = sharpe(points, self.capital)
        return out

    def report_data(self, date: dt.date) -> dict[str, Any]:
        """Everything the end-of-day report shows, as plain JSON-ready data. PnL is the
        portfolio's (since the journal's start) at the day's last snapshot."""
        day = self.days.get(date)
        if day is None:
            raise KeyError(date)
        strategies = sorted(
            {s for s in day.counts if s}
            | {p.strategy for p in (day.snapshot.positions if day.snapshot else []) if p.strategy}
        )
        snap = day.snapshot
        total = self._day_stats(day, TOTAL)
        total["pnl"].update(
            cash=snap.cash if snap else 0,
            equity=snap.equity if snap else 0,
            exec_seq=snap.exec_seq if snap else 0,
        )
        total["equity_max_drawdown"] = max_drawdown([e for _, e, _ in day.curve])
        by_symbol = {
            p.symbol: {
                "qty": p.qty,
                "realized": p.realized,
                "unrealized": p.unrealized,
                "costs": p.fees + p.taxes,
                "net": p.realized + p.unrealized - p.fees - p.taxes,
            }
            for p in (snap.positions if snap else [])
            if p.strategy == TOTAL
        }
        hist_bins = {
            stage: [
                [item.value_iterated_to, item.count_added_in_this_iter_step]
                for item in h.get_recorded_iterator()
            ]
            for stage, h in day.hist.items()
            if h.get_total_count()
        }
        return {
            "date": date.isoformat(),
            "capital": self.capital,
            "total": total,
            "by_strategy": {s: self._day_stats(day, s) for s in strategies},
            "by_symbol": by_symbol,
            "latency_us": latency_table(day.hist),
            "latency_bins_us": hist_bins,
            "curve": [[ts, eq, nets.get(TOTAL, 0)] for ts, eq, nets in day.curve],
            "curve_by_strategy": {
                s: [[ts, nets.get(s, 0)] for ts, _, nets in day.curve] for s in strategies
            },
            "fills": [list(f) for f in day.fills],
        }
