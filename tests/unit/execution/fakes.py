"""Hand-written fakes for the execution engine: a broker adapter that records calls and whose
query answers the test sets, and a publish sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protocol.enums import Side
from protocol.messages import ExecEvent, SubmitOrder
from services.execution.adapters.base import (
    AdapterEvent,
    BrokerAdapter,
    BrokerFill,
    BrokerOrder,
    BrokerUnavailable,
    NotSent,
)
from services.execution.engine import ExecutionEngine
from services.execution.journal import Journal
from services.runtime import ids
from services.runtime.settings import SessionSettings, Settings

NOW = 1_700_000_000_000_000_000


class FakeAdapter(BrokerAdapter):
    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal
        self.submits: list[tuple[int, SubmitOrder]] = []
        self.cancels: list[tuple[int, str]] = []
        self.journal_status_at_send: list[str] = []
        self.orders: list[BrokerOrder] = []
        self.fills: list[BrokerFill] = []
        self.down = False
        self.disconnected = False  # submit/cancel raise NotSent, as with no connection

    def start(self, ctx: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def poll_sockets(self) -> list[Any]:
        return []

    def handle(self, sock: Any) -> list[AdapterEvent]:
        return []

    def submit(self, ref: int, order: SubmitOrder) -> None:
        if self.disconnected:
            raise NotSent("fake venue not connected")
        if self.journal is not None:  # what a crash right now would leave behind
            self.journal_status_at_send.append(self.journal.order(order.client_order_id)["status"])
        self.submits.append((ref, order))

    def cancel(self, ref: int, order_no: str) -> None:
        if self.disconnected:
            raise NotSent("fake venue not connected")
        self.cancels.append((ref, order_no))

    def orders_today(self, timeout: float) -> list[BrokerOrder]:
        if self.down:
            raise BrokerUnavailable("fake venue down")
        return list(self.orders)

    def fills_today(self, timeout: float) -> list[BrokerFill]:
        if self.down:
            raise BrokerUnavailable("fake venue down")
        return list(self.fills)

    def balance(self, timeout: float) -> tuple[int, dict[str, int]]:
        return 0, {}


def make(
    tmp: Path, ready: bool = True, settings: Settings | None = None
) -> tuple[ExecutionEngine, FakeAdapter, list[ExecEvent]]:
    journal = Journal(tmp / "journal.db")
    adapter = FakeAdapter(journal)
    out: list[ExecEvent] = []
    # the fixed test clock (NOW) is a Wednesday 07:13 KST: outside the session
    settings = settings or Settings(session=SessionSettings(clock="always_open"))
    engine = ExecutionEngine(settings, journal, adapter, out.append)
    engine.ready = ready
    return engine, adapter, out


def order(
    intent: str = "i1",
    qty: int = 10,
    price: int = 70_000,
    side: Side = Side.BUY,
    intent_ns: int = NOW,
    reduce_only: bool = False,
) -> SubmitOrder:
    return SubmitOrder(
        client_order_id=ids.client_order_id(intent),
        intent_id=intent,
        strategy="s",
        symbol="005930",
        side=side,
        qty=qty,
        price=price,
        intent_ns=intent_ns,
        reduce_only=reduce_only,
    )
