"""Matching and the cash account of the paper venue (pure: time is passed in).

Continuous-session rules, against the observer's market data:
- a marketable order (buy at/above the best ask, sell at/below the best bid, or MARKET) fills
  at once against the displayed levels within its limit, each fill at the level's price and at
  most the displayed size; displayed size our fills took stays taken until the next snapshot;
- the rest of a DAY limit order rests; IOC and MARKET remainders are cancelled; FOK fills whole
  or not at all;
- a resting order queues behind the size displayed at its price when it started resting
  (queue_ahead): trades at its price consume that queue first and only then fill it; a trade
  through its price fills it up to the trade's size; a snapshot whose opposite side crosses it
  fills it like a marketable order.
Costs follow services.runtime.krx exactly (the portfolio service computes the same, to the won).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from protocol.enums import InstrumentKind, Market, OrderType, Side, TimeInForce
from protocol.messages import Book, Instrument, Trade
from services.runtime import krx

KST = ZoneInfo("Asia/Seoul")


@dataclass
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
    status: str = "open"  # open, filled, canceled, expired, rejected
    queue_ahead: int = 0
    fills: int = 0  # number of fills so far (fill numbers are per order, from 1)

    @property
    def leaves(self) -> int:
        return self.qty - self.filled


@dataclass
class VFill:
    order: VOrder
    fill_no: int
    qty: int
    price: int
    ts_ns: int
    leaves: int  # the order's unfilled quantity right after this fill


@dataclass
class SymbolBook:
    bids: list[list[int]] = field(default_factory=list)  # [price, remaining displayed qty]
    asks: list[list[int]] = field(default_factory=list)


class Reject(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def settlement_date(ts_ns: int) -> dt.date:
    trade_date = dt.datetime.fromtimestamp(ts_ns / 1e9, KST).date()
    return krx.add_business_days(trade_date, 2)


class Venue:
    def __init__(self, cash: int, commission_bp: float, queue_model: bool = True) -> None:
        self.cash = cash
        self.holdings: dict[str, int] = {}
        self.commission_bp = commission_bp
        self.queue_model = queue_model
        self.instruments: dict[str, Instrument] = {}
        self.books: dict[str, SymbolBook] = {}
        self.open: dict[str, VOrder] = {}
        self.closed_market = False
        self.next_no = 1

    # ------------------------------------------------------------------ account
    def reserved_cash(self) -> int:
        total = 0
        for o in self.open.values():
            if o.side is Side.BUY:
                price = o.price or self.instruments[o.symbol].upper_limit
                total += price * o.leaves + krx.commission(price * o.leaves, self.commission_bp)
        return total

    def committed(self, symbol: str) -> int:
        return sum(
            o.leaves for o in self.open.values() if o.symbol == symbol and o.side is Side.SELL
        )

    def costs(self, side: Side, symbol: str, qty: int, price: int, ts_ns: int) -> tuple[int, int]:
        notional = qty * price
        fee = krx.commission(notional, self.commission_bp)
        if side is Side.BUY:
            return fee, 0
        inst = self.instruments.get(symbol)
        market = Market(inst.market) if inst else Market.KOSPI
        kind = InstrumentKind(inst.kind) if inst else InstrumentKind.STOCK
        return fee, krx.sell_tax(notional, market, settlement_date(ts_ns), kind)

    def _book_fill(self, order: VOrder, qty: int, price: int, ts_ns: int) -> VFill:
        fee, tax = self.costs(order.side, order.symbol, qty, price, ts_ns)
        if order.side is Side.BUY:
            self.cash -= qty * price + fee
            self.holdings[order.symbol] = self.holdings.get(order.symbol, 0) + qty
        else:
            self.cash += qty * price - fee - tax
            self.holdings[order.symbol] = self.holdings.get(order.symbol, 0) - qty
        order.filled += qty
        order.fills += 1
        if order.leaves == 0:
            order.status = "filled"
            self.open.pop(order.order_no, None)
        return VFill(order, order.fills, qty, price, ts_ns, order.leaves)

    # ------------------------------------------------------------------ market data
    def on_instrument(self, inst: Instrument) -> None:
        self.instruments[inst.symbol] = inst

    def on_book(self, book: Book, now_ns: int) -> list[VFill]:
        self.books[book.symbol] = SymbolBook(
            [[p, q] for p, q in book.bids], [[p, q] for p, q in book.asks]
        )
        fills: list[VFill] = []
        for order in self._resting(book.symbol):
            fills.extend(self._take(order, now_ns))
        return fills

    def on_trade(self, trade: Trade, now_ns: int) -> list[VFill]:
        fills: list[VFill] = []
        remaining = trade.qty
        for order in self._resting(trade.symbol):
            if remaining <= 0:
                break
            through = (
                trade.price < order.price if order.side is Side.BUY else trade.price > order.price
            )
            at = trade.price == order.price
            if not (through or at):
                continue
            if at and self.queue_model and order.queue_ahead > 0:
                used = min(order.queue_ahead, remaining)
                order.queue_ahead -= used
                remaining -= used
                if remaining <= 0:
                    break
            qty = min(order.leaves, remaining)
            remaining -= qty
            fills.append(self._book_fill(order, qty, order.price, now_ns))
        return fills

    def _resting(self, symbol: str) -> list[VOrder]:
        # price-time priority among our own orders: best price first, then oldest
        orders = [o for o in self.open.values() if o.symbol == symbol]
        orders.sort(key=lambda o: (-o.price if o.side is Side.BUY else o.price, o.ts_ns))
        return orders

    def _take(self, order: VOrder, now_ns: int, limit_qty: int | None = None) -> list[VFill]:
        """Fill `order` against the displayed opposite side within its limit."""
        book = self.books.get(order.symbol)
        if book is None:
            return []
        levels = book.asks if order.side is Side.BUY else book.bids
        fills: list[VFill] = []
        want = order.leaves if limit_qty is None else limit_qty
        for level in levels:
            if want <= 0:
                break
            price, shown = level
            if order.price and (
                price > order.price if order.side is Side.BUY else price < order.price
            ):
                break
            qty = min(shown, want)
            if qty <= 0:
                continue
            level[1] -= qty
            want -= qty
            fills.append(self._book_fill(order, qty, price, now_ns))
        return fills

    def available(self, order: VOrder) -> int:
        book = self.books.get(order.symbol)
        if book is None:
            return 0
        levels = book.asks if order.side is Side.BUY else book.bids
        return sum(
            q
            for p, q in levels
            if not order.price or (p <= order.price if order.side is Side.BUY else p >= order.price)
        )

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
    ) -> tuple[VOrder, list[VFill]]:
        """Validate, number, match. Raises Reject (nothing changes) when refused."""
        inst = self.instruments.get(symbol)
        if self.closed_market:
            raise Reject("MARKET_CLOSED", "the market is closed")
        if inst is None:
            raise Reject("UNKNOWN_SYMBOL", f"unknown symbol {symbol}")
        if qty <= 0:
            raise Reject("BAD_ORDER", f"quantity {qty} must be positive")
        kind = InstrumentKind(inst.kind)
        if order_type is OrderType.MARKET:
            price = 0
        elif order_type is OrderType.LIMIT:
            if not krx.on_tick(price, kind):
                raise Reject(
                    "TICK_SIZE", f"price {price} not on tick {krx.tick_size(max(price, 1), kind)}"
                )
            if not inst.lower_limit <= price <= inst.upper_limit:
                raise Reject(
                    "PRICE_LIMIT", f"price {price} outside [{inst.lower_limit}, {inst.upper_limit}]"
                )
        else:
            raise Reject("BAD_ORDER", f"order type {order_type.value} is not supported here")
        if side is Side.BUY:
            cost_price = price or inst.upper_limit
            need = cost_price * qty + krx.commission(cost_price * qty, self.commission_bp)
            free = self.cash - self.reserved_cash()
            if need > free:
                raise Reject("INSUFFICIENT_CASH", f"needs {need:,} KRW, {free:,} available")
        else:
            free_qty = self.holdings.get(symbol, 0) - self.committed(symbol)
            if qty > free_qty:
                raise Reject("INSUFFICIENT_HOLDINGS", f"sell {qty}, {free_qty} sellable")
        order = VOrder(f"{self.next_no:010d}", symbol, side, qty, price, order_type, tif, now_ns)
        self.next_no += 1
        self.open[order.order_no] = order
        if order.tif is TimeInForce.FOK and self.available(order) < qty:
            order.status = "canceled"
            del self.open[order.order_no]
            return order, []
        fills = self._take(order, now_ns)
        if order.leaves and (order.tif is not TimeInForce.DAY or order_type is OrderType.MARKET):
            order.status = "canceled"
            self.open.pop(order.order_no, None)
        elif order.leaves:
            book = self.books.get(symbol)
            same = (book.bids if side is Side.BUY else book.asks) if book else []
            order.queue_ahead = sum(q for p, q in same if p == price)
        return order, fills

    def cancel(self, order_no: str) -> VOrder:
        order = self.open.pop(order_no, None)
        if order is None:
            raise Reject("ORDER_NOT_FOUND", f"no open order {order_no}")
        order.status = "canceled"
        return order

    def expire_all(self) -> list[VOrder]:
        expired = list(self.open.values())
        for order in expired:
            order.status = "expired"
        self.open.clear()
        return expired
