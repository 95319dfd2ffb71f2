"""Broker queries on a thread of their own.

Reconciliation needs the broker's orders, fills and balance. A real broker answers over HTTP in
tens of milliseconds to seconds (paging, rate limits), and not at all while it is down; asked
from the execution loop, that would hold up heartbeats (the supervisor's heartbeat-loss
guardrail), halts and cancels. So the loop asks (`ask`), goes on serving, and is woken by a byte
on an inproc PAIR socket when the answer (`take`) is ready. One snapshot at a time.

The adapter's query methods must be callable from this thread: the paper adapter opens a
socket per query, a REST adapter uses a session per thread.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zmq

from services.execution.adapters.base import (
    BrokerAdapter,
    BrokerFill,
    BrokerOrder,
    BrokerUnavailable,
)

_ids = itertools.count(1)


@dataclass(frozen=True)
class BrokerSnapshot:
    """What the broker said, and when we asked (epoch ns): anything we sent after `asked_ns`
    cannot be in it, so reconciliation does not judge such orders by it."""

    orders: list[BrokerOrder]
    fills: list[BrokerFill]
    cash: int
    holdings: dict[str, int] = field(default_factory=dict)
    asked_ns: int = 0


def take_snapshot(adapter: BrokerAdapter, timeout: float) -> BrokerSnapshot:
    """The three queries, in this order (orders before fills: a fill of an order opened in
    between is then explained by the next snapshot, never an order unknown to the fills)."""
    asked = time.time_ns()
    orders = adapter.orders_today(timeout)
    fills = adapter.fills_today(timeout)
    cash, holdings = adapter.balance(timeout)
    return BrokerSnapshot(orders, fills, cash, holdings, asked)


class BrokerQueries:
    def __init__(self, adapter: BrokerAdapter, ctx: zmq.Context[Any]) -> None:
        self.adapter = adapter
        address = f"inproc://broker-queries-{next(_ids)}"
        self.wake = ctx.socket(zmq.PAIR)  # the loop polls this one
        self.wake.setsockopt(zmq.LINGER, 0)
        self.wake.bind(address)
        self._signal = ctx.socket(zmq.PAIR)  # used by the worker thread only, once created
        self._signal.setsockopt(zmq.LINGER, 0)
        self._signal.connect(address)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="broker-queries")
        self._future: Future[BrokerSnapshot] | None = None
        self.purpose = ""

    @property
    def busy(self) -> bool:
        return self._future is not None

    def ask(self, timeout: float, purpose: str) -> bool:
        """Start a snapshot; False if one is still under way (its answer serves)."""
        if self._future is not None:
            return False
        self.purpose = purpose
        self._future = self._pool.submit(self._run, timeout)
        return True

    def _run(self, timeout: float) -> BrokerSnapshot:
        try:
            return take_snapshot(self.adapter, timeout)
        finally:
            self._signal.send(b"", zmq.NOBLOCK)  # wake the loop, whatever happened

    def take(self) -> BrokerSnapshot:
        """The answer, after the wake socket was readable. Raises BrokerUnavailable (also for
        an unexpected error in the adapter, which is logged by the caller with its text)."""
        while True:
            try:
                self.wake.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        future, self._future = self._future, None
        if future is None:
            raise BrokerUnavailable("no query was under way")
        try:
            # the wake byte leaves from inside the call, just before the future is marked
            # done: wait that moment out rather than mistake it for a failure
            return future.result(timeout=1.0)
        except BrokerUnavailable:
            raise
        except Exception as exc:  # a bug or a protocol surprise in the adapter: say what
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        # a query blocked on a dead broker ends at its own timeout; do not wait for it
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.wake.close(0)
        self._signal.close(0)
