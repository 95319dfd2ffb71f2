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
from services.runtime.md_sync import FETCH_ERRORS, MdSync, observer_fetch
from services.runtime.service import Service
from services.runtime.snapshots import fetch_instruments
from services.strategy.engine import Intent, StrategyEngine, build_strategies
from services.strategy.plugins import FACTORY


class StrategyService(Service):
    name = "strategy"

    def setup(self) -> None:
        cfg = self.settings.strategy
        strategies = build_strategies(cfg.scope, self.settings, FACTORY)
        self.engine = StrategyEngine(
            strategies,
            cfg.params,
            self.settings.runtime.state_dir,
            self.settings.session.flatten_before_close_min,
        )
        self.engine.start()
        self.intents = self.connect(zmq.PUSH, "intents")
        self.md = self.connect(zmq.SUB, "md")
        self.exec = self.connect(zmq.SUB, "exec")
        # every md message goes through md_sync: duplicates dropped, gaps fetched from the
        # observer's history (md_since), then on_md
        self.md_sync = MdSync(observer_fetch(self), self.on_md, self.count)
        self.on(self.md, "md", self.md_sync.live)
        self.every(0.1, self.md_sync.poll)
        self.on(self.exec, "exec", self.on_exec)
        self.every(cfg.timer_ms / 1000.0, self.on_timer)
        self.command("stats", self.cmd_stats)
        self.warm_up()

    def warm_up(self) -> None:
        # own orders and positions first, so what the plugins see during the md replay is ours
        try:
            history = fetch_history(self)
        except (client.CtlTimeout, client.CtlFailed) as exc:
            logger.warning("no order history from execution ({}); starting flat", exc)
        else:
            for event in history:
                self.engine.warm(event)
            logger.info(
                "warmed up from {} execution events (seq {})", len(history), self.engine.exec_seq
            )
        self.warm_up_md()

    def warm_up_md(self) -> None:
        """Replay the observer's snapshot and latest md to the plugins (their persisted state
        was loaded by on_start) with every order they ask for suppressed, then go live from
        the seq the replay reached (md_sync drops what the socket repeats, fetches any hole)."""
        cfg = self.settings.strategy
        started = time.monotonic()
        self.engine.replaying = True
        try:
            n = self.md_sync.warm_up(
                cfg.warmup_events, cfg.warmup_timeout_s, observer_fetch(self, timeout=1.0)
            )
        except FETCH_ERRORS as exc:
            logger.warning("no market-data history from the observer ({}); starting cold", exc)
            for inst in fetch_instruments(self):
                self.engine.instruments[inst.symbol] = inst
            return
        finally:
            self.engine.replaying = False
        self.count("warmup_suppressed", self.engine.replay_suppressed)
        logger.info(
            "warmed up from {} md messages (stream {} up to seq {}) in {:.0f} ms; {} orders "
            "asked for meanwhile were suppressed",
            n,
            self.md_sync.stream,
            self.md_sync.seq,
            (time.monotonic() - started) * 1000,
            self.engine.replay_suppressed,
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
        # a message md_sync fetched to fill a gap updates the strategies' state, but is no
        # ground for an order: it is late (the next live message decides)
        late = self.md_sync.replaying and not self.engine.replaying
        before = self.engine.replay_suppressed
        if late:
            self.engine.replaying = True
        try:
            self.send(self.engine.on_market(event, time.time_ns(), time.monotonic_ns()))
        finally:
            if late:
                self.engine.replaying = False
                if self.engine.replay_suppressed > before:
                    self.count("recovery_suppressed", self.engine.replay_suppressed - before)

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
            "replay_suppressed": self.engine.replay_suppressed,  # warm-up and gap recovery
            "md": {"stream": self.md_sync.stream, "seq": self.md_sync.seq},
            "last_prices": dict(self.engine.last_prices),
            "positions": {n: dict(c.positions) for n, c in self.engine.contexts.items()},
            "working": {n: len(c.working) for n, c in self.engine.contexts.items()},
        }
