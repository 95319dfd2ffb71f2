"""The execution process: the only one that talks to a broker.

Start-up is recovery: status "recovering" until the journal has been reconciled with the
broker; orders arriving meanwhile are denied NOT_READY (never queued to go out late).
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from protocol import codec
from protocol.enums import TradingState
from protocol.messages import ExecEvent, TradingStateUpdate
from services.execution.adapters import BrokerNotAvailable, make_adapter
from services.execution.adapters.base import BrokerAdapter, BrokerUnavailable
from services.execution.engine import ExecutionEngine
from services.execution.journal import Journal
from services.execution.orders import IllegalTransition
from services.execution.queries import BrokerQueries
from services.runtime.backup import Sources
from services.runtime.backup_schedule import Backups
from services.runtime.log import logger
from services.runtime.service import Service
from services.runtime.snapshots import fetch_instruments

# the journal, the broker ledgers (fill numbering) and the other processes' JSON state files
JOURNAL_BACKUP = Sources(
    databases=("state/journal.db",),
    files=("state/*.json", "broker/*/ledger-*.jsonl"),
    facts={
        "journal_last_seq": "SELECT coalesce(max(seq), 0) FROM events",
        "orders": "SELECT count(*) FROM orders",
        "fills": "SELECT count(*) FROM fills",
    },
)


def _unused(frame: bytes) -> None:
    raise AssertionError("broker sockets are drained by their adapter")


class ExecutionService(Service):
    name = "execution"

    def setup(self) -> None:
        try:
            self.adapter: BrokerAdapter = make_adapter(self.settings)
        except BrokerNotAvailable as exc:
            # a configuration error, not a crash: exit 2 so supervisord does not loop on it
            logger.critical("{}", exc)
            self.stop(str(exc), code=2)
            return
        self.journal = Journal(
            self.settings.runtime.state_dir / "journal.db",
            self.settings.execution.journal_synchronous,
        )
        self.pub = self.bind(zmq.PUB, "exec")
        self.engine = ExecutionEngine(self.settings, self.journal, self.adapter, self.publish)
        self.adapter.start(self.ctx)
        self.queries = BrokerQueries(self.adapter, self.ctx)
        self.on_raw(self.queries.wake, "broker.queries", self.on_snapshot)
        for sock in self.adapter.poll_sockets():
            # read by the adapter itself in _drain below; the handler is never called
            self.on_raw(sock, f"broker.{self.adapter.name}", _unused)
        self.orders = self.bind(zmq.PULL, "orders")
        self.on(self.orders, "orders", self.on_order)
        self.command("orders", self.cmd_orders)
        self.command("fills", lambda args: {"fills": self.journal.fills()})
        self.command("events_since", self.cmd_events_since)
        self.every(0.1, self.tick)
        # online backups on their own thread: `backup` command, schedule, end of day
        self.backups = Backups(self, JOURNAL_BACKUP)
        self.status, self.detail = "recovering", "reconciling with the broker"
        self.next_reconcile = 0.0
        self.reconcile_backoff_until = 0.0
        self.next_periodic = time.monotonic() + self.settings.execution.reconcile_interval_s
        self.position_suspects: dict[str, tuple[int, int]] = {}

    # the adapter reads its own sockets (it may need multipart, or several frames at once)
    def _drain(self, sock: zmq.Socket[Any], handler: Any) -> None:
        if sock in self.adapter.poll_sockets():
            self.guard(
                lambda: self.engine.on_adapter(
                    self.adapter.handle(sock), time.time_ns(), time.monotonic_ns()
                )
            )
            return
        super()._drain(sock, handler)

    def guard(self, fn: Any) -> None:
        try:
            fn()
        except IllegalTransition as exc:
            # crash-only: the journal and the broker disagree in a way we cannot explain;
            # exit non-zero, supervisord restarts us, start-up reconciliation repairs it
            logger.critical("broken order invariant: {}", exc)
            self.stop(f"broken invariant: {exc}", code=3)
        except BrokerUnavailable as exc:
            # a reconcile the broker did not answer: orders stay as journaled (unknown ones
            # stay SENT, never re-sent) and the next timeout check tries again
            self.count("reconcile_failures")
            self.detail = f"broker unavailable: {exc}"
            logger.warning("{}", self.detail)

    def publish(self, event: ExecEvent) -> None:
        self.pub.send(codec.encode(event))

    def on_order(self, msg: Any) -> None:
        self.guard(
            lambda: self.engine.on_order(
                msg, self.trading_state, self.control_fresh(), time.time_ns(), time.monotonic_ns()
            )
        )

    def on_state_change(self, previous: TradingState, msg: TradingStateUpdate) -> None:
        if msg.state is TradingState.HALTED:
            sent = self.engine.cancel_all(msg.epoch)
            logger.warning("HALTED (epoch {}): {} cancels sent", msg.epoch, sent)
        if msg.state is TradingState.REDUCING and msg.flatten:
            self.engine.begin_flatten(msg.epoch)
            # daily limits price the flatten's orders (marketable in every phase)
            self.engine.limits.update({i.symbol: i for i in fetch_instruments(self)})
            self.guard(self.flatten_step)
        else:
            self.engine.end_flatten()

    def flatten_step(self) -> None:
        self.engine.flatten_step(
            self.trading_state, self.control_fresh(), time.time_ns(), time.monotonic_ns()
        )

    def tick(self) -> None:
        now = time.monotonic()
        if not self.engine.ready:
            if now >= self.next_reconcile:
                self.ask_broker("start")
        else:
            self.guard(lambda: self.engine.check_timeouts(now, time.time_ns()))
            if self.engine.reconcile_due and now >= self.reconcile_backoff_until:
                self.ask_broker("due")
            if self.engine.cancel_retry:
                self.engine.retry_cancels()
            if self.engine.flatten_epoch:
                self.guard(self.flatten_step)
            interval = self.settings.execution.reconcile_interval_s
            due = interval and now >= self.next_periodic and now >= self.reconcile_backoff_until
            if due and self.ask_broker("periodic"):
                self.next_periodic = now + interval
        self.counters["open_orders"] = self.engine.open_orders()

    # ------------------------------------------------------------------ reconciliation
    def ask_broker(self, purpose: str) -> bool:
        """Reconciliation, step 1: ask the broker for a snapshot on the query thread; the loop
        goes on serving orders, cancels, halts and heartbeats meanwhile. False if a snapshot
        is already under way (its answer will serve: a due reconcile stays due)."""
        timeout = self.settings.broker.request_timeout_ms / 1000.0
        if not self.queries.ask(timeout, purpose):
            return False
        self.engine.reconcile_due = False  # this snapshot serves it; a later cause sets it again
        return True

    def on_snapshot(self, frame: bytes) -> None:
        """Step 2, on the loop: the broker's answer (or its failure) is applied."""
        purpose = self.queries.purpose
        try:
            snapshot = self.queries.take()
        except BrokerUnavailable as exc:
            self.count("reconcile_failures")
            if not self.engine.ready:
                self.next_reconcile = time.monotonic() + (
                    self.settings.execution.reconcile_retry_ms / 1000.0
                )
                self.detail = f"reconcile failed, retrying: {exc}"
            else:
                # a broker that is down is asked again after a second, not on every tick
                self.engine.reconcile_due = self.engine.reconcile_due or purpose == "due"
                self.reconcile_backoff_until = time.monotonic() + 1.0
                self.detail = f"broker unavailable: {exc}"
            logger.warning("broker query failed ({}): {}", purpose, exc)
            return
        settle_ns = 1_000_000_000 if purpose == "periodic" else 0
        try:
            stats = self.engine.reconcile_with(snapshot, time.time_ns(), settle_ns)
        except IllegalTransition as exc:
            logger.critical("broken order invariant during reconcile: {}", exc)
            self.stop(f"broken invariant: {exc}", code=3)
            return
        if self.engine.ready and self.detail.startswith("broker unavailable"):
            self.detail = ""
        if not self.engine.ready:
            self.engine.ready = True
            self.status, self.detail = "ready", ""
            logger.info("reconciled with the broker: {}", stats)
            if self.trading_state is TradingState.HALTED and self.epoch:
                self.engine.cancel_all(self.epoch)
        else:
            self.count("reconciliations")
            found = sum(stats.values())
            if found and purpose == "periodic":
                # unexplained: our notices missed something without our knowing (the
                # supervisor's guardrail counts these); it is journaled and published now
                self.count("reconcile_differences", found)
                logger.warning("periodic reconciliation found differences: {}", stats)
            elif found:
                # asked for because of a known cause (a notice gap, an unanswered send): the
                # recovery working as designed, not a difference
                self.count("reconcile_recovered", found)
                logger.info("reconciliation ({}) recovered: {}", purpose, stats)
        # the first check of the day fixes the day's baseline (holdings QTS did not make)
        self.check_positions(snapshot.holdings, strict=purpose == "periodic")

    def check_positions(self, holdings: dict[str, int], strict: bool) -> None:
        """Positions against the broker's balance. A fill in flight makes a difference for a
        moment, so only one seen by two periodic checks in a row counts (in
        reconcile_differences, which the supervisor's guardrail turns into REDUCING past its
        threshold)."""
        diffs = self.engine.check_positions(holdings, time.time_ns())
        if not strict:
            return
        confirmed = {s: d for s, d in diffs.items() if self.position_suspects.get(s) == d}
        self.position_suspects = diffs
        if confirmed:
            self.count("position_differences", len(confirmed))
            self.count("reconcile_differences", len(confirmed))
            logger.error(
                "positions differ from the broker's (ours, broker's): {}",
                ", ".join(f"{s} {a}/{b}" for s, (a, b) in confirmed.items()),
            )

    def heartbeat_counters(self) -> dict[str, int]:
        self.counters.update(self.engine.counters)
        # broker connectivity for the supervisor's broker_disconnect guardrail
        self.counters["broker_down_ms"] = self.adapter.broker_down_ms(time.monotonic())
        return self.counters

    def cmd_orders(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "orders": self.journal.orders(bool(args.get("open_only")), int(args.get("limit", 200)))
        }

    def cmd_events_since(self, args: dict[str, Any]) -> dict[str, Any]:
        import msgspec

        events = self.journal.events_since(
            int(args.get("seq", 0)), min(int(args.get("limit", 5000)), 20_000)
        )
        return {
            "events": [msgspec.to_builtins(e) for e in events],
            "last_seq": self.journal.last_seq(),
        }

    def teardown(self) -> None:
        if hasattr(self, "backups"):
            self.backups.close()
        adapter = getattr(self, "adapter", None)  # absent when setup refused the broker type
        if adapter is not None:
            self.queries.close()
            adapter.close()
