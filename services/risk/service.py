"""The risk process: intents in (PULL), orders and denials out to execution (PUSH)."""

from __future__ import annotations

import time
from typing import Any

import zmq

from protocol import codec
from protocol.messages import (
    CancelIntent,
    Instrument,
    MarketData,
    OrderIntent,
    Trade,
)
from services.risk.engine import RiskEngine
from services.runtime import client
from services.runtime.journal_sync import fetch_history
from services.runtime.log import logger
from services.runtime.service import Service
from services.runtime.snapshots import fetch_instruments


class RiskService(Service):
    name = "risk"

    def setup(self) -> None:
        self.engine = RiskEngine(self.settings.risk)
        self.orders = self.connect(zmq.PUSH, "orders")
        self.intents = self.bind(zmq.PULL, "intents")
        self.md = self.connect(zmq.SUB, "md")
        self.exec = self.connect(zmq.SUB, "exec")
        self.on(self.intents, "intents", self.on_intent)
        self.on(self.md, "md", self.on_md)
        self.on(self.exec, "exec", self.engine.on_exec)
        self.command("stats", self.cmd_stats)
        self.every(1.0, lambda: self.engine.expire(time.time_ns()))
        for inst in fetch_instruments(self):  # no UNKNOWN_SYMBOL storm after a restart
            self.engine.on_instrument(inst)
        self.rebuild()

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
            "holdings": {s: q for s, q in e.account.items() if q},
            "open_orders": len(e.open),
        }
