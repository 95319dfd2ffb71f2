"""Matching and the cash account of the paper venue (pure: no sockets, time is passed in).

Continuous-session rules, against the observer's market data:
- a marketable order (buy at/above the best ask, sell at/below the best bid, or MARKET) fills
  at once against the displayed levels within its limit, each fill at the level's price and at
  most the displayed size; displayed size our fills took stays taken until the next snapshot of
  that symbol, so two of our orders never take the same shares;
- the rest of a DAY limit order rests; IOC and MARKET remainders are cancelled; FOK fills whole
  or not at all;
- a resting order queues behind the size displayed at its price when it started resting
  (queue_ahead): trades at its price consume that queue first and only then fill it; a trade
  through its price fills it up to the trade's size; a snapshot whose opposite side crosses it
  fills it like a marketable order.
Costs follow services.runtime.krx exactly (the portfolio service computes the same, to the won).
Refusals are values (Rejected), never exceptions: a refused order changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from protocol.enums import InstrumentKind, Market, MarketPhase, OrderType, Side, TimeInForce
from protocol.messages import Book, Instrument, PhaseChanged, Trade
from services.runtime import krx

KST = ZoneInfo("Asia/Seoul")

OPEN = "open"
FILLED = "filled"
CANCELED = "canceled"
EXPIRED = "expired"


@dataclass(slots=True)
class VOrder:
    order_no: str
    symbol: str
    side: Side
    qty: int
    price: int  # 0 for MARKET
    order_type: OrderType
    tif: TimeInForce
    ts_ns: int
    filled: int = 0
    status: str = OPEN  # open, filled, canceled, expired
    queue_ahead: int = 0  # displayed shares ahead of us at our price (queue model)
    fills: int = 0  # fills so far; fill numbers are per order, from 1
    reason: str = ""  # why it stopped working, when canceled or expired

    @property
    def leaves(self) -> int:
        return self.qty - self.filled


@dataclass(slots=True, frozen=True)
class VFill:
    order: VOrder
    fill_no: int
    qty: int
    price: int
    ts_ns: int
    leaves: int  # the order's unfilled quantity right after this fill
    commission: int
    tax: int


@dataclass(slots=True, frozen=True)
class Rejected:
    code: str
    message: str


@dataclass(slots=True)
class SubmitResult:
    """Either `rejected` (nothing changed, no order number used) or an order and its fills.
    An order whose status is not open or filled afterwards was cancelled at once (IOC, FOK,
    MARKET remainder; `order.reason` says why)."""

    order: VOrder | None = None
    fills: list[VFill] = field(default_factory=list)
    rejected: Rejected | None = None


def settlement_date(ts_ns: int) -> dt.date:
    """T+2 weekdays from the fill's KST calendar date (as the portfolio service settles)."""
    return krx.add_business_days(kst_date(ts_ns), 2)


def kst_date(ts_ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, KST).date()


def kst_day_start_ns(ts_ns: int) -> int:
    """Epoch ns of 00:00 KST on the KST date of `ts_ns`: where a broker's "today" starts."""
    start = dt.datetime.combine(kst_date(ts_ns), dt.time(0), tzinfo=KST)
    return int(start.timestamp()) * 1_000_000_000


def _priority(order: VOrder) -> tuple[int, int, str]:
    # price-time priority among our own orders: best price first, then oldest, then number
    return (-order.price if order.side is Side.BUY else order.price, order.ts_ns, order.order_no)


class Venue:
    def __init__(self, cash: int, commission_bp: float, queue_model: bool = True) -> None:
        self.cash = cash
        self.holdings: dict[str, int] = {}
        self.commission_bp = commission_bp
        self.queue_model = queue_model
        self.instruments: dict[str, Instrument] = {}
        # latest snapshot per symbol as [price, displayed qty not yet taken by our fills]
        self.bids: dict[str, list[list[int]]] = {}
        self.asks: dict[str, list[list[int]]] = {}
        self.open: dict[str, VOrder] = {}
        self._open_by_symbol: dict[str, dict[str, VOrder]] = {}
        self.market_closed = False  # before any PhaseChanged the market counts as open
        self.next_no = 1

    def restore(
        self, cash: int, holdings: dict[str, int], next_no: int, open_orders: list[VOrder]
    ) -> None:
        """Start from the state on disk (service start-up is the recovery path)."""
        self.cash = cash
        self.holdings = dict(holdings)
        self.next_no = next_no
        self.open.clear()
        self._open_by_symbol.clear()
        for order in open_orders:
            self._add_open(order)

    # ------------------------------------------------------------------ account
    def reserved_cash(self) -> int:
        """Cash promised to open buy orders: limit price x leaves + its commission."""
        total = 0
        for o in self.open.values():
            if o.side is Side.BUY:
                notional = o.price * o.leaves
                total += notional + krx.commission(notional, self.commission_bp)
        return total

    def buying_power(self) -> int:
        return self.cash - self.reserved_cash()

    def committed(self, symbol: str) -> int:
        """Shares promised to open sell orders of `symbol`."""
        orders = self._open_by_symbol.get(symbol, {})
        return sum(o.leaves for o in orders.values() if o.side is Side.SELL)

    def sellable(self, symbol: str) -> int:
        return self.holdings.get(symbol, 0) - self.committed(symbol)

    def costs(
        self, side: Side, inst: Instrument, qty: int, price: int, ts_ns: int
    ) -> tuple[int, int]:
        """(commission, tax) of one fill, to the won."""
        notional = qty * price
        fee = krx.commission(notional, self.commission_bp)
        if side is Side.BUY:
            return fee, 0
        tax = krx.sell_tax(
            notional, Market(inst.market), settlement_date(ts_ns), InstrumentKind(inst.kind)
        )
        return fee, tax

    # ------------------------------------------------------------------ market data
    def on_instrument(self, inst: Instrument) -> None:
        self.instruments[inst.symbol] = inst

    def on_book(self, book: Book, now_ns: int) -> list[VFill]:
        """A new snapshot replaces the old one (and what our fills took from it); resting
        orders the opposite side now crosses fill like marketable orders."""
        self.bids[book.symbol] = [[p, q] for p, q in book.bids]
        self.asks[book.symbol] = [[p, q] for p, q in book.asks]
        fills: list[VFill] = []
        for order in self._resting(book.symbol):
            if order.status == OPEN:
                fills.extend(self._take(order, now_ns))
        return fills

    def on_trade(self, trade: Trade, now_ns: int) -> list[VFill]:
        fills: list[VFill] = []
        # shares of this print already given to our orders, per side: a print is shared by
        # our orders in priority order and never fills more than its size on one side
        used = {Side.BUY: 0, Side.SELL: 0}
        for order in self._resting(trade.symbol):
            buy = order.side is Side.BUY
            through = trade.price < order.price if buy else trade.price > order.price
            if not through and trade.price != order.price:
                continue
            avail = trade.qty - used[order.side]
            if avail <= 0:
                continue
            if not through and self.queue_model and order.queue_ahead > 0:
                # the displayed shares ahead of us trade first
                ahead = min(order.queue_ahead, avail)
                order.queue_ahead -= ahead
                avail -= ahead
                if avail <= 0:
                    continue
            qty = min(order.leaves, avail)
            used[order.side] += qty
            fills.append(self._fill(order, qty, order.price, now_ns))
        return fills

    def on_phase(self, event: PhaseChanged) -> list[VOrder]:
        """The market's phase (symbol == ""). CLOSED expires every open order; any other phase
        reopens. A single symbol's phase (VI, halt) is not modelled."""
        if event.symbol:
            return []
        closed = event.phase is MarketPhase.CLOSED
        expired: list[VOrder] = []
        if closed:
            expired = list(self.open.values())
            for order in expired:
                order.status = EXPIRED
                order.reason = "expired at the close"
                self._remove_open(order)
        self.market_closed = closed
        return expired

    # ------------------------------------------------------------------ orders
    def submit(
        self,
        symbol: str,
        side: Side,
        qty: int,
        price: int,
        order_type: OrderType,
        tif: TimeInForce,
        now_ns: int,
    ) -> SubmitResult:
        """Validate, number, match. A refusal changes nothing and uses no order number."""
        rejected = self._check(symbol, side, qty, price, order_type)
        if rejected is not None:
            return SubmitResult(rejected=rejected)
        order = VOrder(f"{self.next_no:010d}", symbol, side, qty, price, order_type, tif, now_ns)
        self.next_no += 1
        if tif is TimeInForce.FOK:
            available = self._available(order)
            if available < qty:
                order.status = CANCELED
                order.reason = f"FOK: only {available} of {qty} available"
                return SubmitResult(order=order)
        self._add_open(order)
        fills = self._take(order, now_ns)
        if order.status == OPEN:
            if order_type is OrderType.MARKET:
                self._cancel_now(order, "no more liquidity")
            elif tif is not TimeInForce.DAY:
                self._cancel_now(order, f"{tif.value} remainder")
            else:
                same = (self.bids if side is Side.BUY else self.asks).get(symbol, [])
                order.queue_ahead = sum(q for p, q in same if p == price) if self.queue_model else 0
        return SubmitResult(order=order, fills=fills)

    def cancel(self, order_no: str) -> VOrder | None:
        """Cancel an open order; None when it is not open (unknown or already finished)."""
        order = self.open.get(order_no)
        if order is None:
            return None
        self._cancel_now(order, "canceled by request")
        return order

    # ------------------------------------------------------------------ internals
    def _check(
        self, symbol: str, side: Side, qty: int, price: int, order_type: OrderType
    ) -> Rejected | None:
        if self.market_closed:
            return Rejected("MARKET_CLOSED", "the market is closed")
        inst = self.instruments.get(symbol)
        if inst is None:
            return Rejected("UNKNOWN_SYMBOL", f"unknown symbol {symbol!r}")
        if qty <= 0:
            return Rejected("BAD_ORDER", f"quantity {qty} must be positive")
        if order_type is OrderType.MARKET:
            if price != 0:
                return Rejected("BAD_ORDER", f"a market order has price 0, not {price}")
        elif order_type is OrderType.LIMIT:
            kind = InstrumentKind(inst.kind)
            if price <= 0:
                return Rejected("BAD_ORDER", f"limit price {price} must be positive")
            if not krx.on_tick(price, kind):
                return Rejected(
                    "TICK_SIZE", f"price {price} is not on the tick {krx.tick_size(price, kind)}"
                )
            if not inst.lower_limit <= price <= inst.upper_limit:
                return Rejected(
                    "PRICE_LIMIT",
                    f"price {price} outside the daily limits "
                    f"[{inst.lower_limit}, {inst.upper_limit}]",
                )
        else:
            return Rejected("BAD_ORDER", f"order type {order_type.value} is not supported")
        if side is Side.BUY:
            # a market buy may walk up to the upper limit: reserve for that
            notional = (price or inst.upper_limit) * qty
            need = notional + krx.commission(notional, self.commission_bp)
            free = self.buying_power()
            if need > free:
                return Rejected("INSUFFICIENT_CASH", f"needs {need:,} KRW, {free:,} KRW available")
        else:
            free_qty = self.sellable(symbol)
            if qty > free_qty:
                return Rejected(
                    "INSUFFICIENT_HOLDINGS", f"sell {qty} {symbol}, only {free_qty} sellable"
                )
        return None

    def _cap(self, order: VOrder) -> int:
        """The worst price `order` may trade at: its limit, or the daily limit for MARKET."""
        if order.price:
            return order.price
        inst = self.instruments[order.symbol]
        return inst.upper_limit if order.side is Side.BUY else inst.lower_limit

    def _levels_within(self, order: VOrder) -> list[list[int]]:
        levels = (self.asks if order.side is Side.BUY else self.bids).get(order.symbol, [])
        cap = self._cap(order)
        if order.side is Side.BUY:
            return [lv for lv in levels if lv[0] <= cap]
        return [lv for lv in levels if lv[0] >= cap]

    def _available(self, order: VOrder) -> int:
        return sum(q for _, q in self._levels_within(order))

    def _take(self, order: VOrder, now_ns: int) -> list[VFill]:
        """Fill `order` against the displayed opposite side within its limit, best first."""
        fills: list[VFill] = []
        for level in self._levels_within(order):
            if order.leaves <= 0:
                break
            qty = min(level[1], order.leaves)
            if qty <= 0:
                continue
            level[1] -= qty  # taken until the next snapshot
            fills.append(self._fill(order, qty, level[0], now_ns))
        return fills

    def _fill(self, order: VOrder, qty: int, price: int, now_ns: int) -> VFill:
        inst = self.instruments[order.symbol]
        fee, tax = self.costs(order.side, inst, qty, price, now_ns)
        notional = qty * price
        if order.side is Side.BUY:
            self.cash -= notional + fee
            self.holdings[order.symbol] = self.holdings.get(order.symbol, 0) + qty
        else:
            self.cash += notional - fee - tax
            self.holdings[order.symbol] = self.holdings.get(order.symbol, 0) - qty
        order.filled += qty
        order.fills += 1
        if order.leaves == 0:
            order.status = FILLED
            self._remove_open(order)
        return VFill(order, order.fills, qty, price, now_ns, order.leaves, fee, tax)

    def _resting(self, symbol: str) -> list[VOrder]:
        orders = self._open_by_symbol.get(symbol)
        # without reference data the tax of a fill is unknown: resting orders wait for the
        # symbol's Instrument (the service restores the last one seen; the observer sends one
        # every second)
        if not orders or symbol not in self.instruments:
            return []
        return sorted(orders.values(), key=_priority)

    def _cancel_now(self, order: VOrder, reason: str) -> None:
        order.status = CANCELED
        order.reason = reason
        self._remove_open(order)

    def _add_open(self, order: VOrder) -> None:
        self.open[order.order_no] = order
        self._open_by_symbol.setdefault(order.symbol, {})[order.order_no] = order

    def _remove_open(self, order: VOrder) -> None:
        self.open.pop(order.order_no, None)
        by_symbol = self._open_by_symbol.get(order.symbol)
        if by_symbol is not None:
            by_symbol.pop(order.order_no, None)
            if not by_symbol:
                del self._open_by_symbol[order.symbol]
