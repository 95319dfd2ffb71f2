"""Guardrails: limits that change the trading state without an operator (pure logic).

Inputs come in (portfolio snapshots, rejects, heartbeats) with the clock passed in: `mono` is
monotonic seconds (ages and windows), `wall_ns` epoch nanoseconds (the KST day, `at_ns`).
evaluate() returns the firings; the supervisor service applies them with `change()`.

A guardrail is level-triggered: while its limit is breached it fires on every evaluation in
which the trading state is below its action (ACTIVE < REDUCING < HALTED), so it never fires
while the state is already at or beyond its action, and an operator's resume while the breach
persists is followed by the same firing. Rejects are events, not a level: a storm's window is
cleared when it fires, so a resume is not undone by rejects that were already acted on.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from protocol.enums import TradingState
from protocol.messages import Heartbeat, OrderRejected, PortfolioSnapshot
from services.runtime.settings import GuardrailSettings

KST = ZoneInfo("Asia/Seoul")
RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
MD_AGE = "md_age_ms."  # observer heartbeat counters: md_age_ms.<symbol>
SKEW_SAMPLES = 10  # one second of heartbeats
WARN_EVERY_S = 10.0  # a warn-only guardrail repeats its log line at most this often
NAMES = (
    "daily_loss",
    "drawdown",
    "exposure",
    "heartbeat_loss",
    "reject_storm",
    "stale_md",
    "clock_skew",
)


@dataclass(frozen=True)
class Firing:
    """A guardrail's decision. action None = warn only (log and record, no state change)."""

    name: str
    action: TradingState | None
    text: str
    at_ns: int


@dataclass
class Record:
    enabled: bool
    action: str
    limit: Any
    fired: bool = False
    count: int = 0
    last: str = ""
    at_ns: int = 0
    breached: bool = False


def fmt(krw: int) -> str:
    return f"{krw:,} KRW"


def kst_day(wall_ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(wall_ns / 1e9, KST).date()


class Guardrails:
    def __init__(self, cfg: GuardrailSettings, critical: list[str]) -> None:
        self.cfg = cfg
        self.critical = list(critical)
        skew_action = None if cfg.clock_skew_action == "warn" else TradingState.HALTED
        H, R = TradingState.HALTED, TradingState.REDUCING
        self.actions: dict[str, TradingState | None] = {
            "daily_loss": H,
            "drawdown": H,
            "exposure": R,
            "heartbeat_loss": H,
            "reject_storm": H,
            "stale_md": H,
            "clock_skew": skew_action,
        }
        limits: dict[str, Any] = {
            "daily_loss": {"max_daily_loss": cfg.max_daily_loss},
            "drawdown": {"max_drawdown": cfg.max_drawdown},
            "exposure": {
                "max_gross_exposure": cfg.max_gross_exposure,
                "max_position_notional": cfg.max_position_notional,
            },
            "heartbeat_loss": {"heartbeat_loss_ms": cfg.heartbeat_loss_ms},
            "reject_storm": {
                "reject_storm_count": cfg.reject_storm_count,
                "reject_storm_window_s": cfg.reject_storm_window_s,
                "reject_storm_ignore_codes": list(cfg.reject_storm_ignore_codes),
            },
            "stale_md": {"stale_md_ms": cfg.stale_md_ms},
            "clock_skew": {"max_clock_skew_ms": cfg.max_clock_skew_ms},
        }
        self.records = {
            n: Record(
                enabled=bool(getattr(cfg, f"{n}_enabled")),
                action=str(self.actions[n] or "warn"),
                limit=limits[n],
            )
            for n in NAMES
        }
        self.snapshot: PortfolioSnapshot | None = None
        self.peak_equity = 0
        self.peak_day: dt.date | None = None
        self.rejects: deque[tuple[float, str]] = deque()
        self.ignored_codes = frozenset(cfg.reject_storm_ignore_codes)
        self.seen: dict[str, float] = {}  # critical service -> monotonic receipt of last hb
        self.md_ages: dict[str, int] = {}
        self.md_received = 0.0
        self.md_done = False
        # service -> its last SKEW_SAMPLES (receipt mono, ts_ns - receipt wall ns in ms)
        self.skew_ms: dict[str, deque[tuple[float, float]]] = {}
        self.warned: dict[str, float] = {}  # warn-only guardrail -> monotonic last warning

    # ------------------------------------------------------------------------------ inputs
    def on_portfolio(self, snap: PortfolioSnapshot, wall_ns: int) -> None:
        self.snapshot = snap
        day = kst_day(wall_ns)
        if day != self.peak_day:
            self.peak_day, self.peak_equity = day, snap.equity  # a new day starts its own peak
        else:
            self.peak_equity = max(self.peak_equity, snap.equity)

    def on_reject(self, ev: OrderRejected, mono: float) -> None:
        if ev.code not in self.ignored_codes:
            self.rejects.append((mono, ev.code))

    def on_heartbeat(self, hb: Heartbeat, mono: float, wall_ns: int) -> None:
        if hb.service in self.critical:
            self.seen[hb.service] = mono
        # a sample is the clocks' offset minus the heartbeat's transit and queueing delay
        samples = self.skew_ms.setdefault(hb.service, deque(maxlen=SKEW_SAMPLES))
        samples.append((mono, (hb.ts_ns - wall_ns) / 1e6))
        if hb.service == "observer":
            self.md_ages = {
                k.removeprefix(MD_AGE): v for k, v in hb.counters.items() if k.startswith(MD_AGE)
            }
            self.md_received = mono
            # a source that has ended (replay or --max-iterations) has no more data to be late
            self.md_done = hb.status == "done"

    # ------------------------------------------------------------------------------ checks
    def evaluate(self, state: TradingState, mono: float, wall_ns: int) -> list[Firing]:
        """The firings due now, given the current trading state."""
        out: list[Firing] = []
        checks = (
            ("daily_loss", self.check_daily_loss),
            ("drawdown", self.check_drawdown),
            ("exposure", self.check_exposure),
            ("heartbeat_loss", lambda: self.check_heartbeat_loss(mono)),
            ("reject_storm", lambda: self.check_reject_storm(mono)),
            ("stale_md", lambda: self.check_stale_md(mono, state)),
            ("clock_skew", lambda: self.check_clock_skew(mono)),
        )
        for name, check in checks:
            rec = self.records[name]
            if not rec.enabled:
                continue
            text = check()
            rec.breached = text is not None
            if text is None:
                continue
            action = self.actions[name]
            if action is None:
                if mono - self.warned.get(name, -WARN_EVERY_S) < WARN_EVERY_S:
                    continue
                self.warned[name] = mono
            elif RANK[state] >= RANK[action]:
                continue  # already at or beyond what this guardrail would do
            if name == "reject_storm":
                self.rejects.clear()
            rec.fired, rec.count, rec.last, rec.at_ns = True, rec.count + 1, text, wall_ns
            out.append(Firing(name, action, text, wall_ns))
        return out

    def check_daily_loss(self) -> str | None:
        s = self.snapshot
        if s is None:
            return None
        net = s.realized + s.unrealized - s.fees - s.taxes
        if net >= -self.cfg.max_daily_loss:
            return None
        return (
            f"daily loss {fmt(-net)} exceeds {fmt(self.cfg.max_daily_loss)} (realized "
            f"{s.realized:,}, unrealized {s.unrealized:,}, fees {s.fees:,}, taxes {s.taxes:,})"
        )

    def check_drawdown(self) -> str | None:
        s = self.snapshot
        if s is None:
            return None
        drop = self.peak_equity - s.equity
        if drop <= self.cfg.max_drawdown:
            return None
        return (
            f"drawdown {fmt(drop)} from the day's peak equity {fmt(self.peak_equity)} "
            f"(equity {fmt(s.equity)}) exceeds {fmt(self.cfg.max_drawdown)}"
        )

    def check_exposure(self) -> str | None:
        s = self.snapshot
        if s is None:
            return None
        gross, worst, worst_symbol = 0, 0, ""
        for p in s.positions:
            if p.strategy != "":
                continue  # per-strategy rows repeat the account's holdings
            notional = abs(p.qty) * p.last_price
            gross += notional
            if notional > worst:
                worst, worst_symbol = notional, p.symbol
        parts = []
        if gross > self.cfg.max_gross_exposure:
            parts.append(f"gross exposure {fmt(gross)} exceeds {fmt(self.cfg.max_gross_exposure)}")
        if worst > self.cfg.max_position_notional:
            parts.append(
                f"{worst_symbol} notional {fmt(worst)} exceeds "
                f"{fmt(self.cfg.max_position_notional)}"
            )
        return "; ".join(parts) or None

    def check_heartbeat_loss(self, mono: float) -> str | None:
        limit_s = self.cfg.heartbeat_loss_ms / 1000.0
        silent = [(n, mono - t) for n, t in sorted(self.seen.items()) if mono - t > limit_s]
        if not silent:
            return None
        return "; ".join(f"{n} silent for {gap:.1f} s (limit {limit_s:.1f} s)" for n, gap in silent)

    def check_reject_storm(self, mono: float) -> str | None:
        window = self.cfg.reject_storm_window_s
        while self.rejects and mono - self.rejects[0][0] > window:
            self.rejects.popleft()
        if len(self.rejects) < self.cfg.reject_storm_count:
            return None
        codes = Counter(code for _, code in self.rejects)
        top = ", ".join(f"{c} x{n}" for c, n in codes.most_common(3))
        return (
            f"{len(self.rejects)} orders rejected within {window:g} s "
            f"(limit {self.cfg.reject_storm_count}): {top}"
        )

    def check_stale_md(self, mono: float, state: TradingState) -> str | None:
        if state is not TradingState.ACTIVE or self.md_done or not self.md_ages:
            return None
        # the observer's own silence adds to every age: a dead observer is stale data too
        since = int((mono - self.md_received) * 1000)
        stale = sorted(
            ((age + since, sym) for sym, age in self.md_ages.items()),
            reverse=True,
        )
        worst, sym = stale[0]
        if worst <= self.cfg.stale_md_ms:
            return None
        n = sum(1 for age, _ in stale if age > self.cfg.stale_md_ms)
        return (
            f"no market data for {sym} for {worst} ms (limit {self.cfg.stale_md_ms} ms; "
            f"{n} symbol{'s' if n != 1 else ''} stale)"
        )

    def check_clock_skew(self, mono: float) -> str | None:
        """A sample is (offset - delay): a heartbeat that waited in a queue looks like a clock
        behind ours. The largest sample of the last second is the least delayed one (as NTP
        picks its minimum-delay sample), so a busy moment is not mistaken for skew."""
        limit = self.cfg.max_clock_skew_ms
        recent = self.cfg.heartbeat_loss_ms / 1000.0  # a service gone quiet no longer counts
        skewed = []
        for name, samples in sorted(self.skew_ms.items()):
            if not samples or mono - samples[-1][0] > recent:
                continue
            offset = max(ms for _, ms in samples)
            if abs(offset) > limit:
                skewed.append((name, offset))
        if not skewed:
            return None
        return "; ".join(
            f"{n} clock {ms:+.0f} ms from the supervisor's (limit {limit} ms)" for n, ms in skewed
        )

    # ------------------------------------------------------------------------------ report
    def status(self) -> dict[str, Any]:
        return {
            name: {
                "enabled": r.enabled,
                "action": r.action,
                "limit": r.limit,
                "fired": r.fired,
                "count": r.count,
                "last": r.last,
                "at_ns": r.at_ns,
                "breached": r.breached,
            }
            for name, r in self.records.items()
        }
