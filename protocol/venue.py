"""The paper venue's own wire protocol: what a broker looks like from execution's side.

The venue is outside the system, like KIS or Kiwoom: execution's paper adapter talks to it over
a DEALER -> ROUTER socket (requests, each answered once) and a SUB <- PUB socket (notices). Like
the real brokers it never echoes a client order id: it answers with its own order number, and
its notices name only that number.
"""

from __future__ import annotations

from protocol.enums import OrderType, Side, TimeInForce
from protocol.messages import Base


class VenueNewOrder(Base, tag="v_new", frozen=True, kw_only=True):
    """price is 0 for MARKET, BEST and PRIORITY (the venue prices BEST at the best opposite
    quote, PRIORITY at the best same-side quote); LIMIT and CONDITIONAL carry their limit."""

    req_id: int
    symbol: str
    side: Side
    qty: int
    price: int
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.DAY


class VenueCancel(Base, tag="v_cancel", frozen=True, kw_only=True):
    req_id: int
    order_no: str


class VenueQuery(Base, tag="v_query", frozen=True, kw_only=True):
    """what: "open_orders", "orders" (every order today), "fills" (today's), "balance"."""

    req_id: int
    what: str


VenueRequest = VenueNewOrder | VenueCancel | VenueQuery


class VenueOrder(Base, tag="v_order_row", frozen=True, kw_only=True):
    order_no: str
    symbol: str
    side: Side
    qty: int
    price: int
    order_type: OrderType
    tif: TimeInForce
    filled_qty: int
    status: str  # "open", "filled", "canceled", "expired", "rejected"
    ts_ns: int


class VenueFill(Base, tag="v_fill_row", frozen=True, kw_only=True):
    order_no: str
    fill_no: int  # per order, from 1
    symbol: str
    side: Side
    qty: int
    price: int
    ts_ns: int


class VenueAck(Base, tag="v_ack", frozen=True, kw_only=True):
    """Answer to VenueNewOrder / VenueCancel. ok=False carries the venue's code and message.

    New orders: MARKET_CLOSED, UNKNOWN_SYMBOL, HALTED (the symbol or market is halted: cancels
    only), BAD_ORDER (quantity, price, or a type/condition pair KRX does not have), TICK_SIZE,
    PRICE_LIMIT, ORDER_TYPE_PHASE (BEST, PRIORITY or CONDITIONAL in a call auction, or
    CONDITIONAL in the closing auction), TIF_PHASE (IOC/FOK in a call auction), NO_QUOTE (BEST or
    PRIORITY with no quote to price it at), INSUFFICIENT_CASH, INSUFFICIENT_HOLDINGS.
    Cancels: ORDER_CLOSED, ORDER_NOT_FOUND. Queries: BAD_QUERY. See docs/venue.md."""

    req_id: int
    ok: bool
    order_no: str = ""
    code: str = ""
    message: str = ""
    ts_ns: int = 0


class VenueQueryReply(Base, tag="v_qreply", frozen=True, kw_only=True):
    req_id: int
    orders: list[VenueOrder] = []
    fills: list[VenueFill] = []
    cash: int = 0
    holdings: dict[str, int] = {}


VenueReply = VenueAck | VenueQueryReply


class VenueFillNotice(Base, tag="v_fill", frozen=True, kw_only=True):
    """A fill of one of the venue's orders (execution notice, 체결통보)."""

    seq: int
    order_no: str
    fill_no: int
    symbol: str
    side: Side
    qty: int
    price: int
    leaves_qty: int
    ts_ns: int


class VenueOrderNotice(Base, tag="v_status", frozen=True, kw_only=True):
    """An order stopped working without a fill: "canceled" or "expired"."""

    seq: int
    order_no: str
    status: str
    leaves_qty: int
    ts_ns: int
    reason: str = ""


VenueNotice = VenueFillNotice | VenueOrderNotice
