"""The portfolio process: books the exec stream, marks to md, publishes PortfolioSnapshot.

State is a pure function of the execution journal (fills), the initial cash and the marks, so
nothing is persisted: on start the journal is replayed through execution's `events_since`."""

from __future__ import annotations

import time
from typing import Any

import zmq

from protocol import codec
from protocol.messages import ExecEvent, Instrument, MarketData, Trade
from services.portfolio.engine import PortfolioEngine
from services.runtime.client import ctl_address
from services.runtime.journal_sync import JournalSync, ctl_fetch
from services.runtime.log import logger
from services.runtime.service import Service
from services.runtime.snapshots import fetch_instruments

COALESCE_S = 0.05  # at most one on-change snapshot every 50 ms


class PortfolioService(Service):
    name = "portfolio"

    def setup(self) -> None:
        acct = self.settings.account
        self.engine = PortfolioEngine(acct.initial_cash, acct.commission_rate_bp)
        rt = self.settings.runtime
        self.sync = JournalSync(
            ctl_fetch(ctl_address(rt.run_dir, "execution", rt.endpoints)), self._apply
        )
        self._dirty = False
        self._snap_seq = 0
        self._pub = self.bind(zmq.PUB, "portfolio")
        self.on(self.connect(zmq.SUB, "md"), "md", self.on_md)
        self.on(self.connect(zmq.SUB, "exec"), "exec", self.on_exec)
        self.command("positions", self.cmd_positions)
        self.command("pnl", self.cmd_pnl)
        self.every(COALESCE_S, self._publish_if_dirty)
        self.every(self.settings.portfolio.publish_interval_ms / 1000.0, self.publish)
        self.every(1.0, self._retry)
        # market and kind decide the sell tax: know them before replaying the journal's fills
        for inst in fetch_instruments(self):
            self.engine.on_instrument(inst)
        self._recover()

    # ------------------------------------------------------------------------------ input
    def _apply(self, event: ExecEvent) -> None:
        if self.engine.apply(event):
            self._dirty = True

    def on_exec(self, event: ExecEvent) -> None:
        gaps = self.sync.gaps
        self.sync.live(event)
        if self.sync.gaps != gaps:
            self.count("exec_gaps")
            if not self.sync.synced:
                self._recovering()

    def on_md(self, msg: MarketData) -> None:
        if isinstance(msg, Trade):
            if self.engine.on_trade(msg.symbol, msg.price):
                self._dirty = True
        elif isinstance(msg, Instrument):
            self.engine.on_instrument(msg)

    # ------------------------------------------------------------------------------ recovery
    def _recover(self) -> None:
        if self.sync.catch_up():
            if self.status != "ready":
                logger.info(
                    "portfolio caught up with the journal at exec seq {}", self.engine.exec_seq
                )
            self.status, self.detail = "ready", ""
            self._dirty = True
        else:
            self._recovering()

    def _recovering(self) -> None:
        self.status, self.detail = "recovering", self.sync.error

    def _retry(self) -> None:
        if not self.sync.synced:
            self._recover()

    # ------------------------------------------------------------------------------ output
    def _publish_if_dirty(self) -> None:
        if self._dirty:
            self.publish()

    def publish(self) -> None:
        self._dirty = False
        self._snap_seq += 1
        snap = self.engine.snapshot(self._snap_seq, time.time_ns())
        try:
            self._pub.send(codec.encode(snap), zmq.NOBLOCK)
        except zmq.Again:
            self.count("portfolio_dropped")

    def cmd_positions(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "positions": self.engine.positions(),
            "cash": self.engine.cash,
            "equity": self.engine.equity(),
            "exec_seq": self.engine.exec_seq,
        }

    def cmd_pnl(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.engine.pnl()
