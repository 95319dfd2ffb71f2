"""Guardrails: limits that change the trading state without an operator (pure logic).

Inputs come in (portfolio snapshots, rejects, heartbeats) with the clock passed in: `mono` is
monotonic seconds (ages and windows), `wall_ns` epoch nanoseconds (the KST day, `at_ns`).
evaluate() returns the firings; the supervisor service applies them with `change()`.

A guardrail is level-triggered: while its limit is breached it fires on every evaluation in
which the trading state is below its action (ACTIVE < REDUCING < HALTED), so it never fires
while the state is already at or beyond its action, and an operator's resume while the breach
persists is followed by the same firing. Rejects are events, not a level: a storm's window is
cleared when it fires, so a resume is not undone by rejects that were already acted on;
the same holds for reconciliation differences.

The day state (the KST day's peak equity, the reject window, the reconciliation count and the
firings) survives a supervisor restart: day_state() and restore() give and take a JSON-able
dict, which the service writes to a file; a restart on another KST day starts afresh.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, deque
from dataclasses import dataclass, field
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
    "broker_disconnect",
    "reconcile_differences",
)
Breach = tuple[str, dict[str, Any]]  # what a check found: the text and its figures


@dataclass(frozen=True)
class Firing:
    """A guardrail's decision. action None = warn only (log and record, no state change)."""

    name: str
    action: TradingState | None
    text: str
    at_ns: int
    figures: dict[str, Any] = field(default_factory=dict)  # the numbers in the text


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
    figures: dict[str, Any] = field(default_factory=dict)


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
            "broker_disconnect": TradingState(cfg.broker_disconnect_action),
            "reconcile_differences": R,
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
            "broker_disconnect": {"broker_disconnect_grace_ms": cfg.broker_disconnect_grace_ms},
            "reconcile_differences": {"max_reconcile_differences": cfg.max_reconcile_differences},
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
        # execution's broker_down_ms heartbeat counter (None: never reported) and its receipt
        self.broker_down_ms: int | None = None
        self.broker_seen = 0.0
        # reconcile_differences: execution's counter is per process; count what it adds
        self.recon_pid = 0
        self.recon_last = 0
        self.recon_count = 0  # differences since the last firing, this KST day
        self.dirty = False  # the day state changed since day_state() was last taken

    # ------------------------------------------------------------------------------ inputs
    def on_portfolio(self, snap: PortfolioSnapshot, wall_ns: int) -> None:
        self.snapshot = snap
        day = kst_day(wall_ns)
        if day != self.peak_day:
            if self.peak_day is not None:
                self.recon_count = 0  # a new day (not the first snapshot) starts its own count
            self.peak_day, self.peak_equity = day, snap.equity  # a new day starts its own peak
            self.dirty = True
        elif snap.equity > self.peak_equity:
            self.peak_equity = snap.equity
            self.dirty = True

    def on_reject(self, ev: OrderRejected, mono: float) -> None:
        if ev.code not in self.ignored_codes:
            self.rejects.append((mono, ev.code))
            self.dirty = True

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
        elif hb.service == "execution":
            self.on_execution(hb, mono)

    def on_execution(self, hb: Heartbeat, mono: float) -> None:
        down = hb.counters.get("broker_down_ms")
        if down is not None:
            self.broker_down_ms, self.broker_seen = down, mono
        n = hb.counters.get("reconcile_differences", 0)
        # a new process counts from 0: all of its count is new (a restarted execution, or
        # the first heartbeat of the day's first start)
        added = n - self.recon_last if hb.pid == self.recon_pid and n >= self.recon_last else n
        if added or hb.pid != self.recon_pid:
            self.recon_pid, self.recon_last = hb.pid, n
            self.recon_count += added
            self.dirty = True

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
            ("broker_disconnect", lambda: self.check_broker_disconnect(mono)),
            ("reconcile_differences", self.check_reconcile_differences),
        )
        for name, check in checks:
            rec = self.records[name]
            if not rec.enabled:
                continue
            breach = check()
            rec.breached = breach is not None
            if breach is None:
                continue
            text, figures = breach
            action = self.actions[name]
            if action is None:
                if mono - self.warned.get(name, -WARN_EVERY_S) < WARN_EVERY_S:
                    continue
                self.warned[name] = mono
            elif RANK[state] >= RANK[action]:
                continue  # already at or beyond what this guardrail would do
            if name == "reject_storm":
                self.rejects.clear()
            elif name == "reconcile_differences":
                self.recon_count = 0
            rec.fired, rec.count, rec.last, rec.at_ns = True, rec.count + 1, text, wall_ns
            rec.figures = figures
            self.dirty = True
            out.append(Firing(name, action, text, wall_ns, figures))
        return out

    def check_daily_loss(self) -> Breach | None:
        s = self.snapshot
        if s is None:
            return None
        net = s.realized + s.unrealized - s.fees - s.taxes
        if net >= -self.cfg.max_daily_loss:
            return None
        return (
            f"daily loss {fmt(-net)} exceeds {fmt(self.cfg.max_daily_loss)} (realized "
            f"{s.realized:,}, unrealized {s.unrealized:,}, fees {s.fees:,}, taxes {s.taxes:,})"
        ), {
            "loss": -net,
            "max_daily_loss": self.cfg.max_daily_loss,
            "realized": s.realized,
            "unrealized": s.unrealized,
            "fees": s.fees,
            "taxes": s.taxes,
        }

    def check_drawdown(self) -> Breach | None:
        s = self.snapshot
        if s is None:
            return None
        drop = self.peak_equity - s.equity
        if drop <= self.cfg.max_drawdown:
            return None
        return (
            f"drawdown {fmt(drop)} from the day's peak equity {fmt(self.peak_equity)} "
            f"(equity {fmt(s.equity)}) exceeds {fmt(self.cfg.max_drawdown)}"
        ), {
            "drawdown": drop,
            "peak_equity": self.peak_equity,
            "equity": s.equity,
            "max_drawdown": self.cfg.max_drawdown,
        }

    def check_exposure(self) -> Breach | None:
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
        if not parts:
            return None
        return "; ".join(parts), {
            "gross_exposure": gross,
            "max_gross_exposure": self.cfg.max_gross_exposure,
            "largest_position": worst_symbol,
            "largest_notional": worst,
            "max_position_notional": self.cfg.max_position_notional,
        }

    def check_heartbeat_loss(self, mono: float) -> Breach | None:
        limit_s = self.cfg.heartbeat_loss_ms / 1000.0
        silent = [(n, mono - t) for n, t in sorted(self.seen.items()) if mono - t > limit_s]
        if not silent:
            return None
        text = "; ".join(f"{n} silent for {gap:.1f} s (limit {limit_s:.1f} s)" for n, gap in silent)
        return text, {
            "silent_ms": {n: int(gap * 1000) for n, gap in silent},
            "heartbeat_loss_ms": self.cfg.heartbeat_loss_ms,
        }

    def check_reject_storm(self, mono: float) -> Breach | None:
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
        ), {
            "rejects": len(self.rejects),
            "window_s": window,
            "reject_storm_count": self.cfg.reject_storm_count,
            "codes": dict(codes),
        }

    def check_stale_md(self, mono: float, state: TradingState) -> Breach | None:
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
        ), {"symbol": sym, "age_ms": worst, "stale_symbols": n, "stale_md_ms": self.cfg.stale_md_ms}

    def check_clock_skew(self, mono: float) -> Breach | None:
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
        text = "; ".join(
            f"{n} clock {ms:+.0f} ms from the supervisor's (limit {limit} ms)" for n, ms in skewed
        )
        return text, {"skew_ms": {n: round(ms) for n, ms in skewed}, "max_clock_skew_ms": limit}

    def check_broker_disconnect(self, mono: float) -> Breach | None:
        """execution's broker_down_ms, grown by the time since its heartbeat said so (a dead
        execution's last word was 'down'; heartbeat_loss deals with its silence)."""
        if not self.broker_down_ms:
            return None
        down = self.broker_down_ms + int((mono - self.broker_seen) * 1000)
        grace = self.cfg.broker_disconnect_grace_ms
        if down <= grace:
            return None
        return (
            f"broker not answering execution for {down / 1000:.1f} s (grace {grace / 1000:.1f} s)"
        ), {"broker_down_ms": down, "broker_disconnect_grace_ms": grace}

    def check_reconcile_differences(self) -> Breach | None:
        limit = self.cfg.max_reconcile_differences
        if self.recon_count <= limit:
            return None
        return (
            f"execution's reconciliations with the broker found {self.recon_count} "
            f"differences (limit {limit})"
        ), {"differences": self.recon_count, "max_reconcile_differences": limit}

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
                "figures": r.figures,
            }
            for name, r in self.records.items()
        }

    # ------------------------------------------------------------------------------ day state
    def day_state(self, mono: float, wall_ns: int) -> dict[str, Any]:
        """What a restarted supervisor needs to carry on the same KST day (JSON-able). Times
        are ages, since a monotonic clock means nothing to another process."""
        self.dirty = False
        return {
            "saved_ns": wall_ns,
            "day": (self.peak_day or kst_day(wall_ns)).isoformat(),
            "peak_equity": self.peak_equity if self.peak_day else None,
            "rejects": [[round(mono - t, 3), code] for t, code in self.rejects],
            "recon_pid": self.recon_pid,
            "recon_last": self.recon_last,
            "recon_count": self.recon_count,
            "records": {
                n: {"count": r.count, "last": r.last, "at_ns": r.at_ns, "figures": r.figures}
                for n, r in self.records.items()
                if r.fired
            },
        }

    def restore(self, data: dict[str, Any], mono: float, wall_ns: int) -> str:
        """Take back a day_state() from the same KST day; says what was restored. Raises
        ValueError (KeyError, TypeError) on a malformed dict."""
        day = dt.date.fromisoformat(data["day"])
        # execution's counter baseline holds across days: it is per process, not per day
        self.recon_pid, self.recon_last = int(data["recon_pid"]), int(data["recon_last"])
        if day != kst_day(wall_ns):
            return f"day state is from {day}: starting a new day"
        if data["peak_equity"] is not None:
            self.peak_day, self.peak_equity = day, int(data["peak_equity"])
        gap_s = max(0.0, (wall_ns - int(data["saved_ns"])) / 1e9)
        self.rejects = deque(
            (mono - float(age) - gap_s, str(code)) for age, code in data["rejects"]
        )
        self.recon_count = int(data["recon_count"])
        for name, rec in data["records"].items():
            if name in self.records:
                r = self.records[name]
                r.fired, r.count, r.last = True, int(rec["count"]), str(rec["last"])
                r.at_ns, r.figures = int(rec["at_ns"]), dict(rec["figures"])
        return (
            f"peak equity {fmt(self.peak_equity)}, {len(self.rejects)} recent rejects, "
            f"{self.recon_count} reconcile differences, {len(data['records'])} firings"
        )
