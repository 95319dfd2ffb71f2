"""The broker adapter interface.

Submit and cancel never block: the answers come back as adapter events from handle(), which the
service calls when one of poll_sockets() is readable. A broker on HTTP + WebSocket (KIS, Kiwoom)
runs its I/O on its own threads and hands events back through an inproc socket it lists in
poll_sockets(). The queries block with a timeout; execution uses them at start and to resolve
orders whose outcome is unknown, never on the hot path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import zmq

from protocol.enums import Side
from protocol.messages import SubmitOrder


@dataclass(frozen=True)
class SubmitAccepted:
    ref: int
    order_no: str
    ts_ns: int


@dataclass(frozen=True)
class SubmitRejected:
    ref: int
    code: str
    message: str


@dataclass(frozen=True)
class CancelRejected:
    ref: int
    order_no: str
    code: str
    message: str


@dataclass(frozen=True)
class Fill:
    order_no: str
    fill_no: int
    qty: int
    price: int
    leaves_qty: int
    ts_ns: int


@dataclass(frozen=True)
class OrderClosed:
    order_no: str
    status: str  # "canceled" or "expired"
    leaves_qty: int
    reason: str


@dataclass(frozen=True)
class NoticeGap:
    """Notices were lost (a sequence gap or a reconnect): resynchronise with queries."""

    detail: str


AdapterEvent = SubmitAccepted | SubmitRejected | CancelRejected | Fill | OrderClosed | NoticeGap


@dataclass(frozen=True)
class BrokerOrder:
    order_no: str
    symbol: str
    side: Side
    qty: int
    price: int
    filled_qty: int
    status: str  # "open", "filled", "canceled", "expired", "rejected"
    ts_ns: int


@dataclass(frozen=True)
class BrokerFill:
    order_no: str
    fill_no: int
    symbol: str
    side: Side
    qty: int
    price: int
    ts_ns: int


class NotSent(Exception):
    """submit/cancel provably did not leave this process (no connection to the broker):
    nothing can have happened at the broker, so there is nothing to reconcile."""


class BrokerUnavailable(Exception):
    """A query got no answer in time, or the broker said it cannot answer."""


class BrokerAdapter(ABC):
    name = "broker"

    @abstractmethod
    def start(self, ctx: zmq.Context[Any]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def poll_sockets(self) -> list[zmq.Socket[Any]]: ...

    @abstractmethod
    def handle(self, sock: zmq.Socket[Any]) -> list[AdapterEvent]: ...

    @abstractmethod
    def submit(self, ref: int, order: SubmitOrder) -> None: ...

    @abstractmethod
    def cancel(self, ref: int, order_no: str) -> None: ...

    @abstractmethod
    def orders_today(self, timeout: float) -> list[BrokerOrder]: ...

    @abstractmethod
    def fills_today(self, timeout: float) -> list[BrokerFill]: ...

    @abstractmethod
    def balance(self, timeout: float) -> tuple[int, dict[str, int]]: ...

    def broker_down_ms(self, mono: float) -> int:
        """0 while the broker answers, else ms since it stopped (the supervisor's
        broker_disconnect guardrail). Called with every heartbeat, from the loop: an adapter
        may send its liveness probe from here. An adapter that cannot tell says 0."""
        return 0
