"""Every message QTS puts on a socket.

Rules (msgspec schema evolution): every type is a frozen, kw-only, tagged Struct; new fields go
only at the end and carry a default; a field's type never changes and a tag is never reused.
Prices are integer KRW and quantities integer shares. `*_ns` fields ending in `_ns` are wall-clock
epoch nanoseconds unless the name says `mono`; the Trace holds monotonic nanoseconds, comparable
between processes on one host (CLOCK_MONOTONIC is system-wide on Linux).
"""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.enums import (
    InstrumentKind,
    Market,
    MarketPhase,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TradingState,
)

PROTOCOL_VERSION = 1
"""Carried by every Heartbeat; the supervisor refuses a service that speaks another version."""


class Trace(msgspec.Struct, frozen=True, array_like=True):
    """Monotonic-ns stamps, one per stage, copied forward from message to message.

    observed: the observer published the tick; evaluated: strategy emitted the intent;
    decided: risk approved it; sent: execution handed it to the broker; acked: the broker answered.
    0 means the stage has not happened (yet).
    """

    observed: int = 0
    evaluated: int = 0
    decided: int = 0
    sent: int = 0
    acked: int = 0


class Base(msgspec.Struct, frozen=True, kw_only=True, tag_field="t"):
    """Common configuration; not sent on its own."""


# ---------------------------------------------------------------------------------------------
# Market data: observer --PUB md--> strategy, portfolio, risk, paper venue, performance
# ---------------------------------------------------------------------------------------------


class Instrument(Base, tag="instrument", frozen=True, kw_only=True):
    """Reference data for one symbol for the day. Sent by the observer at start, on subscribe
    and every few seconds. Receivers keep the latest per symbol; risk uses it for tick sizes and
    the daily limit, the venue for its price band."""

    stream: int
    seq: int
    symbol: str
    market: Market = Market.KOSPI
    kind: InstrumentKind = InstrumentKind.STOCK
    base_price: int  # yesterday's close, adjusted: the daily limit's reference
    upper_limit: int
    lower_limit: int
    name: str = ""


class Trade(Base, tag="trade", frozen=True, kw_only=True):
    """One exchange trade (체결). Receivers mark positions to `price`; the venue matches resting
    orders against it. `stream` identifies the publisher's incarnation; `seq` increases by one per
    message of that stream, so a receiver detects gaps and duplicates."""

    stream: int
    seq: int
    symbol: str
    exch_ns: int
    price: int
    qty: int
    aggressor: Side | None = None
    cum_volume: int = 0
    trace: Trace = Trace()


class Book(Base, tag="book", frozen=True, kw_only=True):
    """An order-book snapshot (호가), up to 10 levels a side, best first, as (price, qty)."""

    stream: int
    seq: int
    symbol: str
    exch_ns: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    trace: Trace = Trace()


class PhaseChanged(Base, tag="phase", frozen=True, kw_only=True):
    """The market (symbol == "") or one symbol (a VI or halt) entered a new phase. The observer
    repeats the market's current phase with the reference data, so a late joiner learns it."""

    stream: int
    seq: int
    symbol: str
    exch_ns: int
    phase: MarketPhase
    # the end of today's regular session (closing auction included), exchange clock, epoch ns;
    # 0 when unknown or the market never closes (session.clock always_open). Strategies use it
    # to flatten a set number of minutes before the closing auction.
    closes_ns: int = 0


class EndOfStream(Base, tag="eos", frozen=True, kw_only=True):
    """The source is exhausted (replay end, or --max-iterations reached). Receivers may drain."""

    stream: int
    seq: int
    events: int


MarketData = Instrument | Trade | Book | PhaseChanged | EndOfStream


# ---------------------------------------------------------------------------------------------
# Intents: strategy --PUSH intents--> risk
# ---------------------------------------------------------------------------------------------


class OrderIntent(Base, tag="intent", frozen=True, kw_only=True):
    """A strategy wants an order. Risk approves it (SubmitOrder to execution) or denies it
    (IntentDenied). `intent_id` is deterministic for the market event that caused it, so a
    strategy restarted on the same data emits the same id and execution never sends it twice.
    `created_ns` is wall clock: risk and execution refuse an intent older than the set age."""

    intent_id: str
    strategy: str
    symbol: str
    side: Side
    qty: int
    price: int  # 0 for a market order
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.DAY
    reduce_only: bool = False
    created_ns: int
    trace: Trace = Trace()


class CancelIntent(Base, tag="cancel_intent", frozen=True, kw_only=True):
    """A strategy wants one of its orders cancelled. Cancels always pass risk."""

    intent_id: str
    strategy: str
    client_order_id: str
    created_ns: int


Intent = OrderIntent | CancelIntent


# ---------------------------------------------------------------------------------------------
# Orders: risk --PUSH orders--> execution
# ---------------------------------------------------------------------------------------------


class SubmitOrder(Base, tag="submit", frozen=True, kw_only=True):
    """Risk approved an intent. Execution journals it, then sends it to the broker, unless the
    client order id is already journaled (then it is a duplicate and is dropped)."""

    client_order_id: str
    intent_id: str
    strategy: str
    symbol: str
    side: Side
    qty: int
    price: int
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.DAY
    reduce_only: bool = False
    intent_ns: int  # wall clock of the intent, for the age check at execution
    trace: Trace = Trace()


class CancelOrder(Base, tag="cancel", frozen=True, kw_only=True):
    """Cancel one open order at the broker. Always allowed, even when HALTED."""

    client_order_id: str
    strategy: str
    reason: str = ""


class IntentDenied(Base, tag="denied", frozen=True, kw_only=True):
    """An intent was refused before reaching a broker, with a stable code (protocol.codes.Reason)
    and a human-readable reason carrying the figures. Risk sends it to execution, which journals
    it and republishes it on the exec stream with its sequence number set."""

    intent_id: str
    strategy: str
    symbol: str
    side: Side
    qty: int
    price: int
    code: str
    reason: str
    ts_ns: int
    seq: int = 0
    trace: Trace = Trace()


Order = SubmitOrder | CancelOrder | IntentDenied


# ---------------------------------------------------------------------------------------------
# Execution events: execution --PUB exec--> strategy, risk, portfolio, performance, supervisor
# `seq` is the journal's event number: it increases across restarts, and execution answers
# "events after seq N" on its ctl endpoint, so a subscriber that restarts or sees a gap recovers.
# ---------------------------------------------------------------------------------------------


class OrderSubmitted(Base, tag="submitted", frozen=True, kw_only=True):
    """Journaled and handed to the broker; outcome unknown until the broker answers."""

    seq: int
    client_order_id: str
    intent_id: str
    strategy: str
    symbol: str
    side: Side
    qty: int
    price: int
    order_type: OrderType = OrderType.LIMIT
    ts_ns: int
    trace: Trace = Trace()


class OrderAccepted(Base, tag="accepted", frozen=True, kw_only=True):
    """The broker took the order and gave it a number."""

    seq: int
    client_order_id: str
    broker_order_no: str
    strategy: str
    symbol: str
    side: Side
    qty: int
    price: int
    ts_ns: int
    trace: Trace = Trace()


class OrderRejected(Base, tag="rejected", frozen=True, kw_only=True):
    """The broker refused the order (or execution could not send it). Nothing is open."""

    seq: int
    client_order_id: str
    strategy: str
    symbol: str
    side: Side
    qty: int
    price: int
    code: str
    reason: str
    ts_ns: int


class OrderFilled(Base, tag="filled", frozen=True, kw_only=True):
    """A fill. `fill_id` is deterministic (broker order number + broker fill number), so a
    replayed fill is recognised and never counted twice."""

    seq: int
    fill_id: str
    client_order_id: str
    broker_order_no: str
    strategy: str
    symbol: str
    side: Side
    qty: int
    price: int
    leaves_qty: int
    exch_ns: int
    ts_ns: int
    trace: Trace = Trace()


class OrderCanceled(Base, tag="canceled", frozen=True, kw_only=True):
    """The rest of an order is no longer working: cancelled, or expired at the close."""

    seq: int
    client_order_id: str
    broker_order_no: str
    strategy: str
    symbol: str
    side: Side
    canceled_qty: int
    reason: str
    ts_ns: int
    expired: bool = False


ExecEvent = (
    OrderSubmitted | OrderAccepted | OrderRejected | OrderFilled | OrderCanceled | IntentDenied
)


# ---------------------------------------------------------------------------------------------
# Portfolio: portfolio --PUB portfolio--> risk, performance, supervisor
# ---------------------------------------------------------------------------------------------


class Position(Base, tag="position", frozen=True, kw_only=True):
    """One (strategy, symbol) holding. strategy == "" is the account total. `cost` is the
    total KRW paid for the shares held (moving average method), so avg price = cost / qty."""

    strategy: str
    symbol: str
    qty: int
    cost: int
    last_price: int
    realized: int
    unrealized: int
    fees: int
    taxes: int


class PortfolioSnapshot(Base, tag="portfolio", frozen=True, kw_only=True):
    """The whole book, published on change (at most every few ms) and every second."""

    seq: int
    ts_ns: int
    exec_seq: int  # last execution event applied
    cash: int
    equity: int
    realized: int
    unrealized: int
    fees: int
    taxes: int
    positions: list[Position]


PortfolioStream = PortfolioSnapshot


# ---------------------------------------------------------------------------------------------
# Control: supervisor --PUB control--> every service; every service --PUSH heartbeat--> supervisor
# ---------------------------------------------------------------------------------------------


class TradingStateUpdate(Base, tag="state", frozen=True, kw_only=True):
    """The trading state, sent every 100 ms and at once on change. `epoch` increases on every
    change. A service applies a newer epoch, then sends a Heartbeat with `epoch_ack` set to it:
    that is its acknowledgement of a halt. A service that hears none of these for longer than
    the fail-safe time sends no new order."""

    state: TradingState
    epoch: int
    reason: str
    by: str
    changed_ns: int
    ts_ns: int
    # REDUCING entered by `qts-ctl halt --flatten`: execution cancels every open order, closes
    # every position with reduce-only orders of its own and refuses all others; the supervisor
    # moves to HALTED once execution reports flat (or the flatten times out)
    flatten: bool = False


class Heartbeat(Base, tag="hb", frozen=True, kw_only=True):
    """Each service, every 100 ms and at once after applying a new control epoch."""

    service: str
    pid: int
    protocol: int
    seq: int
    started_ns: int
    ts_ns: int
    epoch_ack: int
    status: str  # "starting", "recovering", "ready", "stopping"
    detail: str = ""
    counters: dict[str, int] = {}
    # latency histograms, name -> the count in each of services/runtime/histogram.py's fixed
    # buckets, then the sum in µs (metrics only: an older supervisor ignores the field)
    histograms: dict[str, list[int]] = {}


Control = TradingStateUpdate
HeartbeatStream = Heartbeat


# ---------------------------------------------------------------------------------------------
# qts-ctl: CLI --REQ/DEALER--> a service's ctl ROUTER
# ---------------------------------------------------------------------------------------------


class CtlRequest(Base, tag="req", frozen=True, kw_only=True):
    """One command. `args` are plain values (str, int, bool, None)."""

    request_id: str
    command: str
    args: dict[str, Any] = {}


class CtlReply(Base, tag="reply", frozen=True, kw_only=True):
    """One answer shape for every command: ok, a code from protocol.codes.CtlCode, a reason a
    person can read, and data (command-specific plain values)."""

    request_id: str
    ok: bool
    code: str
    reason: str = ""
    data: Any = None


Ctl = CtlRequest | CtlReply

__all__ = [
    "PROTOCOL_VERSION",
    "Book",
    "CancelIntent",
    "CancelOrder",
    "CtlReply",
    "CtlRequest",
    "EndOfStream",
    "ExecEvent",
    "Heartbeat",
    "Instrument",
    "Intent",
    "IntentDenied",
    "MarketData",
    "Order",
    "OrderAccepted",
    "OrderCanceled",
    "OrderFilled",
    "OrderIntent",
    "OrderRejected",
    "OrderStatus",
    "OrderSubmitted",
    "PhaseChanged",
    "PortfolioSnapshot",
    "Position",
    "SubmitOrder",
    "Trace",
    "Trade",
    "TradingStateUpdate",
]
