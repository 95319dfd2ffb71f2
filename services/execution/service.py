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
from services.runtime.log import logger
from services.runtime.service import Service

LOOP_QUERY_TIMEOUT_S = 0.25  # a local venue answers in ms; a real broker needs a thread


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
        for sock in self.adapter.poll_sockets():
            # read by the adapter itself in _drain below; the handler is never called
            self.on_raw(sock, f"broker.{self.adapter.name}", _unused)
        self.orders = self.bind(zmq.PULL, "orders")
        self.on(self.orders, "orders", self.on_order)
        self.command("orders", self.cmd_orders)
        self.command("fills", lambda args: {"fills": self.journal.fills()})
        self.command("events_since", self.cmd_events_since)
        self.every(0.1, self.tick)
        self.status, self.detail = "recovering", "reconciling with the broker"
        self.next_reconcile = 0.0
        self.reconcile_backoff_until = 0.0
        self.next_periodic = time.monotonic() + self.settings.execution.reconcile_interval_s

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

    def tick(self) -> None:
        now = time.monotonic()
        if not self.engine.ready and now >= self.next_reconcile:
            self.try_reconcile()
        elif self.engine.ready:
            self.guard(lambda: self.engine.check_timeouts(now, time.time_ns()))
            if self.engine.reconcile_due and now >= self.reconcile_backoff_until:
                self.loop_reconcile(0)
            if self.engine.cancel_retry:
                self.engine.retry_cancels()
            interval = self.settings.execution.reconcile_interval_s
            if interval and now >= self.next_periodic and now >= self.reconcile_backoff_until:
                self.next_periodic = now + interval
                stats = self.loop_reconcile(1_000_000_000)
                if stats is not None:
                    self.count("reconciliations")
                    differences = sum(stats.values())
                    if differences:
                        self.count("reconcile_differences", differences)
                        logger.warning("periodic reconciliation found differences: {}", stats)
        self.counters["open_orders"] = self.engine.open_orders()

    def loop_reconcile(self, settle_ns: int) -> dict[str, int] | None:
        """A reconcile while trading: short query timeouts, and a second of back-off after a
        failure so that a broker that is down does not keep the loop (and its heartbeats,
        halts and cancels) blocked. Anything the broker knows that our notices did not tell
        us is journaled and published like any event."""
        try:
            return self.engine.reconcile(time.time_ns(), settle_ns, timeout=LOOP_QUERY_TIMEOUT_S)
        except BrokerUnavailable as exc:
            self.engine.reconcile_due = True
            self.reconcile_backoff_until = time.monotonic() + 1.0
            self.count("reconcile_failures")
            self.detail = f"broker unavailable: {exc}"
            logger.warning("reconcile failed, retrying in 1 s: {}", exc)
        except IllegalTransition as exc:
            logger.critical("broken order invariant during reconcile: {}", exc)
            self.stop(f"broken invariant: {exc}", code=3)
        return None

    def try_reconcile(self) -> None:
        try:
            stats = self.engine.reconcile(time.time_ns())
        except BrokerUnavailable as exc:
            self.detail = f"reconcile failed, retrying: {exc}"
            self.next_reconcile = time.monotonic() + (
                self.settings.execution.reconcile_retry_ms / 1000.0
            )
            logger.warning("{}", self.detail)
            return
        except IllegalTransition as exc:
            logger.critical("broken order invariant during reconcile: {}", exc)
            self.stop(f"broken invariant: {exc}", code=3)
            return
        self.engine.ready = True
        self.status, self.detail = "ready", ""
        logger.info("reconciled with the broker: {}", stats)
        if self.trading_state is TradingState.HALTED and self.epoch:
            self.engine.cancel_all(self.epoch)

    def heartbeat_counters(self) -> dict[str, int]:
        self.counters.update(self.engine.counters)
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
        adapter = getattr(self, "adapter", None)  # absent when setup refused the broker type
        if adapter is not None:
            adapter.close()
