"""The risk process: intents in (PULL), orders and denials out to execution (PUSH)."""

from __future__ import annotations

import json
import time
from typing import Any

import zmq

from protocol import codec
from protocol.messages import (
    CancelIntent,
    Instrument,
    MarketData,
    OrderIntent,
    PhaseChanged,
    Trade,
)
from services.risk.engine import RiskEngine
from services.runtime import client
from services.runtime.journal_sync import fetch_history
from services.runtime.log import logger
from services.runtime.md_sync import market_snapshot
from services.runtime.service import Service
from services.runtime.statefile import atomic_write


class RiskService(Service):
    name = "risk"

    def setup(self) -> None:
        s = self.settings
        self.engine = RiskEngine(s.risk, s.account, s.broker)
        self.orders = self.connect(zmq.PUSH, "orders")
        self.intents = self.bind(zmq.PULL, "intents")
        # marks, not md: the latest trade per symbol every observer.marks_interval_ms plus
        # reference data and phases at once, so risk is not woken by every tick (it would
        # compete for the CPU with the strategy whose intent it is about to judge)
        self.md = self.connect(zmq.SUB, "marks")
        self.exec = self.connect(zmq.SUB, "exec")
        self.on(self.intents, "intents", self.on_intent)
        # a conflated stream has gaps by design: no md_sync here. Phases and reference data
        # are repeated every second; a restart starts from the observer's snapshot
        self.on(self.md, "marks", self.on_md)
        self.on(self.exec, "exec", self.engine.on_exec)
        self.command("stats", self.cmd_stats)
        self.every(1.0, lambda: self.engine.expire(time.time_ns(), time.monotonic_ns()))
        self.rebuild()
        self.warm_up_md()
        # cancel counts per KST day survive a restart (orders per day come from the journal)
        self.cancels_path = self.settings.runtime.state_dir / "risk_cancels.json"
        self.cancels_saved: dict[str, object] = {}
        self.load_cancels()
        self.every(1.0, self.save_cancels)

    def load_cancels(self) -> None:
        try:
            saved = json.loads(self.cancels_path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            logger.error("{} unreadable ({}); cancel counts start at zero", self.cancels_path, exc)
            return
        if isinstance(saved, dict) and self.engine.restore_cancels(saved, time.time_ns()):
            logger.info("today's cancel counts restored: {} on the account", saved.get("account"))
        self.cancels_saved = self.engine.cancel_counts()

    def save_cancels(self) -> None:
        """At most once a second, and only when they changed: a crash loses at most the
        last second's count."""
        counts = self.engine.cancel_counts()
        if counts != self.cancels_saved:
            self.cancels_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.cancels_path, json.dumps(counts).encode())
            self.cancels_saved = counts

    def teardown(self) -> None:
        if hasattr(self, "cancels_path"):
            self.save_cancels()

    def warm_up_md(self) -> None:
        """The observer's current state (instruments, market and symbol phases, last trades)
        before the first intent, so a restarted risk does not deny a burst as SESSION_UNKNOWN
        or UNKNOWN_SYMBOL while it waits for the next broadcast."""
        market_snapshot(self, self.on_md)

    def rebuild(self) -> None:
        """Positions and working orders from execution's journal, then live events."""
        try:
            for event in fetch_history(self):
                self.engine.on_exec(event)
        except (client.CtlTimeout, client.CtlFailed) as exc:
            logger.warning("no order history from execution ({}); holdings start at zero", exc)

    def on_md(self, event: MarketData) -> None:
        if isinstance(event, Trade):
            self.engine.on_trade(event)
        elif isinstance(event, Instrument):
            self.engine.on_instrument(event)
        elif isinstance(event, PhaseChanged):
            self.engine.on_phase(event)

    def on_intent(self, intent: OrderIntent | CancelIntent) -> None:
        decision = self.engine.decide(
            intent, self.trading_state, self.control_fresh(), time.time_ns(), time.monotonic_ns()
        )
        try:
            self.orders.send(codec.encode(decision), zmq.NOBLOCK)
        except zmq.Again:
            # execution down and its queue full: the intent is lost here, and that is safe
            # (nothing was sent); the strategy sees no answer and its pending times out
            self.count("orders_dropped")

    def cmd_stats(self, args: dict[str, Any]) -> dict[str, Any]:
        e = self.engine
        return {
            "approved": e.approved,
            "denied": dict(e.denied),
            "exec_seq": e.exec_seq,
            "holdings": {s: t.pos for s, t in e.sym_t.items() if t.pos},
            "open_orders": len(e.open),
            "cash": e.cash(),
            "day_pnl": e.acct.day_pnl(),
            "orders_today": e.acct.orders,
            "cancels_today": e.acct.cancels,
            "market_phase": e.market_phase.value if e.market_phase else None,
            "symbol_phases": {sym: p.value for sym, p in e.symbol_phase.items()},
            "submit_rate": {"per_s": e.rate, "burst": e.burst},
        }
