"""The portfolio process: books the exec stream, marks to md, publishes PortfolioSnapshot.

State is a pure function of the execution journal (fills), the initial cash and the marks, so
nothing is persisted: on start the journal is replayed through execution's `events_since`."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import zmq

from protocol import codec
from protocol.messages import ExecEvent, Instrument, MarketData, Trade
from services.portfolio.engine import KST, PortfolioEngine
from services.runtime import krx
from services.runtime.calendar import KrxCalendar
from services.runtime.client import ctl_address
from services.runtime.journal_sync import JournalSync, ctl_fetch
from services.runtime.log import logger
from services.runtime.md_sync import market_snapshot
from services.runtime.service import Service

COALESCE_S = 0.05  # at most one on-change snapshot every 50 ms


def today() -> dt.date:
    return dt.datetime.now(KST).date()


def load_calendar() -> KrxCalendar | None:
    """The KRX calendar for settlement dates (cached JSON, milliseconds; the first build on a
    machine takes seconds). Without it settlement falls back to krx.add_business_days, which
    gets the tax year right but not every holiday."""
    year = today().year
    if year > krx.last_tax_year():
        logger.warning(
            "sell tax rates are known up to {}: sales settling in {} use that year's rate",
            krx.last_tax_year(),
            year,
        )
    try:
        return KrxCalendar.load(year - 1, year + 1)
    except Exception as exc:  # a missing or broken exchange-calendars must not stop the books
        logger.warning("no KRX calendar ({}): settlement by weekdays only", exc)
        return None


class PortfolioService(Service):
    name = "portfolio"

    def setup(self) -> None:
        acct = self.settings.account
        fees = acct.broker_fees(self.settings.broker.type)
        self.engine = PortfolioEngine(
            acct.initial_cash,
            krx.FeeSchedule(stock_bp=fees.stock_bp, etf_bp=fees.etf_bp, unit=fees.unit),
        )
        # the calendar loads off the loop (a cold cache takes seconds); until it is there,
        # settlement uses krx.add_business_days, which gets the tax year right
        self._calendar_box: list[KrxCalendar | None] = []
        threading.Thread(
            target=lambda: self._calendar_box.append(load_calendar()),
            name="krx-calendar",
            daemon=True,
        ).start()
        rt = self.settings.runtime
        self.sync = JournalSync(
            ctl_fetch(ctl_address(rt.run_dir, "execution", rt.endpoints)), self._apply
        )
        self._dirty = False
        self._snap_seq = 0
        self._pub = self.bind(zmq.PUB, "portfolio")
        # marks, not md: each symbol's latest trade every observer.marks_interval_ms is all
        # the marking needs, and the portfolio is not woken by every tick. Conflated, so no
        # md_sync (it has gaps by design); a restart starts from the observer's snapshot
        self.on(self.connect(zmq.SUB, "marks"), "marks", self.on_md)
        self.on(self.connect(zmq.SUB, "exec"), "exec", self.on_exec)
        self.command("positions", self.cmd_positions)
        self.command("pnl", self.cmd_pnl)
        self.command("snapshot", self.cmd_snapshot)
        self.every(COALESCE_S, self._publish_if_dirty)
        self.every(self.settings.portfolio.publish_interval_ms / 1000.0, self.publish)
        self.every(1.0, self._retry)
        # market and kind decide the sell tax: know them (and the marks) before replaying the
        # journal's fills
        market_snapshot(self, self.on_md)
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
        if self._calendar_box and self.engine.calendar is None:
            self.engine.calendar = self._calendar_box.pop()
            self._dirty = True
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
        day = today()
        return {
            "positions": self.engine.position_rows(day),
            "cash": self.engine.cash,
            "equity": self.engine.equity(),
            "balance": self.engine.balance(day),
            "exec_seq": self.engine.exec_seq,
            "date": day.isoformat(),
        }

    def cmd_pnl(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.engine.pnl(today())

    def cmd_snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        """Publish a snapshot now (on request) and return it."""
        self.publish()
        return {"seq": self._snap_seq, "exec_seq": self.engine.exec_seq}
