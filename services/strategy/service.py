"""The strategy process: market data and own order events in, intents out to risk."""

from __future__ import annotations

import time
from typing import Any

import zmq

from protocol import codec
from protocol.enums import TradingState
from protocol.messages import ExecEvent, MarketData, TradingStateUpdate
from services.runtime import client
from services.runtime.journal_sync import fetch_history
from services.runtime.log import logger
from services.runtime.service import Service
from services.runtime.snapshots import fetch_instruments
from services.strategy.engine import Intent, StrategyEngine, build_strategies
from services.strategy.plugins import FACTORY


class StrategyService(Service):
    name = "strategy"

    def setup(self) -> None:
        cfg = self.settings.strategy
        strategies = build_strategies(cfg.scope, self.settings, FACTORY)
        self.engine = StrategyEngine(strategies, cfg.params, self.settings.runtime.state_dir)
        self.engine.start()
        self.intents = self.connect(zmq.PUSH, "intents")
        self.md = self.connect(zmq.SUB, "md")
        self.exec = self.connect(zmq.SUB, "exec")
        self.on(self.md, "md", self.on_md)
        self.on(self.exec, "exec", self.on_exec)
        self.every(cfg.timer_ms / 1000.0, self.on_timer)
        self.command("stats", self.cmd_stats)
        self.warm_up()

    def warm_up(self) -> None:
        for inst in fetch_instruments(self):
            self.engine.instruments[inst.symbol] = inst
        try:
            history = fetch_history(self)
        except (client.CtlTimeout, client.CtlFailed) as exc:
            logger.warning("no order history from execution ({}); starting flat", exc)
            return
        for event in history:
            self.engine.warm(event)
        logger.info(
            "warmed up from {} execution events (seq {})", len(history), self.engine.exec_seq
        )

    def on_state_change(self, previous: TradingState, msg: TradingStateUpdate) -> None:
        self.engine.trading_state = msg.state

    def send(self, intents: list[Intent]) -> None:
        for intent in intents:
            try:
                self.intents.send(codec.encode(intent), zmq.NOBLOCK)
                self.count("intents")
            except zmq.Again:
                self.count("intents_dropped")  # risk is down and its queue is full

    def on_md(self, event: MarketData) -> None:
        # the fail-safe: without a fresh word from the supervisor, nothing new is intended
        self.engine.trading_state = (
            self.trading_state if self.control_fresh() else TradingState.HALTED
        )
        self.send(self.engine.on_market(event, time.time_ns(), time.monotonic_ns()))

    def on_exec(self, event: ExecEvent) -> None:
        self.send(self.engine.on_exec(event, time.time_ns(), time.monotonic_ns()))

    def on_timer(self) -> None:
        self.engine.trading_state = (
            self.trading_state if self.control_fresh() else TradingState.HALTED
        )
        self.send(self.engine.on_timer(time.time_ns(), time.monotonic_ns()))

    def cmd_stats(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "strategies": [s.name for s in self.engine.strategies],
            "exec_seq": self.engine.exec_seq,
            "suppressed": self.engine.suppressed,
            "positions": {n: dict(c.positions) for n, c in self.engine.contexts.items()},
            "working": {n: len(c.working) for n, c in self.engine.contexts.items()},
        }
