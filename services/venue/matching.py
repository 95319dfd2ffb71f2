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
Phases (PhaseChanged; symbol "" is the market, a symbol its own VI or halt):
- in a call auction (PRE_OPEN, CLOSING_AUCTION, a symbol's VI) orders collect without matching;
  when the phase leaves the auction they uncross at one price (uncross_price: KRX's matching
  price) against the last displayed book; CLOSED then expires every open order;
- a HALTED symbol (or market) refuses new orders and keeps the open ones (cancels work);
- order types by phase (krx.md section 4): auctions take LIMIT and MARKET, DAY only; BEST,
  PRIORITY, CONDITIONAL and IOC/FOK only in the continuous session. A CONDITIONAL order is a
  limit order until the closing auction, where it takes part as a market order.
Costs follow services.runtime.krx exactly (the portfolio service computes the same, to the won).
Refusals are values (Rejected), never exceptions: a refused order changes nothing.
See docs/venue.md for the rules and their sources.
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

# call auctions: orders collect, then one uncross when the phase ends
AUCTIONS = frozenset({MarketPhase.PRE_OPEN, MarketPhase.CLOSING_AUCTION, MarketPhase.VI})
# order types a call auction accepts (krx.md section 4: "Auctions accept limit and market")
AUCTION_TYPES = frozenset({OrderType.LIMIT, OrderType.MARKET})
# order types priced by the venue from the book: the request carries price 0
PRICED_BY_VENUE = frozenset({OrderType.MARKET, OrderType.BEST, OrderType.PRIORITY})


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


@dataclass(slots=True)
class PhaseResult:
    """What a phase change did: fills of an uncross, orders it closed (expired at the close,
    market remainders cancelled after an uncross)."""

    fills: list[VFill] = field(default_factory=list)
    closed: list[VOrder] = field(default_factory=list)


def uncross_price(
    buys: list[tuple[int, int]],
    sells: list[tuple[int, int]],
    reference: int,
    kind: InstrumentKind = InstrumentKind.STOCK,
) -> tuple[int, int] | None:
    """KRX's single-price matching price: (price, volume), or None when nothing executes.

    `buys`/`sells` are (limit, qty); limit 0 is a market order (it executes at any price).
    Source: KRX Global "Methods of auction" (GLB0606030102T1) and "Price determination in single
    price auction" (GLB0604010100T3):
    1. the price executes the largest volume;
    2. at it, every buy priced above and every sell priced below execute in full (market orders
       count as priced beyond every limit), so only one side is rationed, at the price itself;
    3. of several such prices (a run of ticks), the one equal to `reference` (the immediately
       preceding price) wins, else the one closest to it; of two equally close, the lower (our
       choice: the source has no such case).
    When rule 2 leaves no price (market orders on one side exceed everything the other side
    offers), rules 1 and 3 decide alone."""
    limits = [p for p, q in (*buys, *sells) if p > 0 and q > 0]
    demand_market = sum(q for p, q in buys if p == 0)
    supply_market = sum(q for p, q in sells if p == 0)
    if not limits:
        if demand_market and supply_market:
            return reference, min(demand_market, supply_market)
        return None
    price = krx.round_to_tick(min(*limits, reference), kind)
    hi = max(*limits, reference)
    best: tuple[int, bool, int, int] | None = None  # (volume, rule 2 holds, -distance, -price)
    while price <= hi:
        demand = demand_market + sum(q for p, q in buys if p >= price)
        supply = supply_market + sum(q for p, q in sells if 0 < p <= price)
        volume = min(demand, supply)
        if volume > 0:
            above = demand_market + sum(q for p, q in buys if p > price)
            below = supply_market + sum(q for p, q in sells if 0 < p < price)
            key = (volume, above <= volume and below <= volume, -abs(price - reference), -price)
            if best is None or key > best:
                best = key
        price = krx.ticks_away(price, 1, kind)
    if best is None:
        return None
    return -best[3], best[0]


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
        # before any PhaseChanged the market counts as in its continuous session
        self.market_phase = MarketPhase.CONTINUOUS
        # single symbols' own phases (VI, HALTED, a reopening auction) until CONTINUOUS for them
        self.symbol_phase: dict[str, MarketPhase] = {}
        self.last_price: dict[str, int] = {}  # last trade or uncross: the auction's reference
        self.next_no = 1

    def phases(self) -> dict[str, MarketPhase]:
        """The market's phase under "" and each symbol's own (VI, HALTED, ...): what to save."""
        return {"": self.market_phase, **self.symbol_phase}

    @property
    def market_closed(self) -> bool:
        return self.market_phase is MarketPhase.CLOSED

    def phase_of(self, symbol: str) -> MarketPhase:
        """The phase orders of `symbol` trade in: the market's, unless the market is closed or
        the symbol has its own (VI, halt)."""
        if self.market_phase is MarketPhase.CLOSED:
            return MarketPhase.CLOSED
        return self.symbol_phase.get(symbol, self.market_phase)

    def restore(
        self,
        cash: int,
        holdings: dict[str, int],
        next_no: int,
        open_orders: list[VOrder],
        phases: dict[str, MarketPhase] | None = None,
    ) -> None:
        """Start from the state on disk (service start-up is the recovery path). `phases` as
        phases() gave them: a venue restarted inside an auction still collects orders."""
        phases = phases or {}
        self.market_phase = phases.get("", MarketPhase.CONTINUOUS)
        self.symbol_phase = {s: p for s, p in phases.items() if s}
        self.cash = cash
        self.holdings = dict(holdings)
        self.next_no = next_no
        self.open.clear()
        self._open_by_symbol.clear()
        for order in open_orders:
            self._add_open(order)

    # ------------------------------------------------------------------ account
    def reserved_cash(self) -> int:
        """Cash promised to open buy orders: the worst price it may pay x leaves + commission
        (a market order, or a conditional one in the closing auction, may pay the upper limit)."""
        total = 0
        for o in self.open.values():
            if o.side is Side.BUY:
                notional = self._reserve_price(o) * o.leaves
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
        if self.phase_of(book.symbol) is not MarketPhase.CONTINUOUS:
            return fills  # an auction's book is matched once, at the uncross
        for order in self._resting(book.symbol):
            if order.status == OPEN:
                fills.extend(self._take(order, now_ns))
        return fills

    def on_trade(self, trade: Trade, now_ns: int) -> list[VFill]:
        fills: list[VFill] = []
        self.last_price[trade.symbol] = trade.price
        if self.phase_of(trade.symbol) is not MarketPhase.CONTINUOUS:
            # a print outside the continuous session is an exchange uncross (or late): our
            # auction orders were matched at our own uncross, not again against its volume
            return fills
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

    def on_phase(self, event: PhaseChanged, now_ns: int | None = None) -> PhaseResult:
        """A new phase for the market (symbol "") or one symbol (VI, HALTED, a reopening
        PRE_OPEN; CONTINUOUS for a symbol ends its own phase and it follows the market again).
        Every symbol whose orders leave a call auction for a phase other than HALTED uncrosses;
        the market's CLOSED then expires every open order and ends every symbol's own phase."""
        now = event.exch_ns if now_ns is None else now_ns
        symbols = [event.symbol] if event.symbol else sorted(self._open_by_symbol)
        before = {s: self.phase_of(s) for s in symbols}
        if event.symbol:
            if event.phase is MarketPhase.CONTINUOUS:
                self.symbol_phase.pop(event.symbol, None)  # back to the market's phase
            else:
                self.symbol_phase[event.symbol] = event.phase
        else:
            self.market_phase = event.phase
            if event.phase is MarketPhase.CLOSED:
                self.symbol_phase.clear()  # a VI or halt ends with the day
        result = PhaseResult()
        for symbol in symbols:
            after = self.phase_of(symbol)
            if (
                before[symbol] in AUCTIONS
                and after not in AUCTIONS
                and after is not MarketPhase.HALTED
            ):
                fills, closed = self._uncross(symbol, now)
                result.fills.extend(fills)
                result.closed.extend(closed)
        if self.market_phase is MarketPhase.CLOSED:
            for order in list(self.open.values()):
                order.status = EXPIRED
                order.reason = "expired at the close"
                self._remove_open(order)
                result.closed.append(order)
        return result

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
        """Validate, number, match. A refusal changes nothing and uses no order number.
        MARKET, BEST and PRIORITY orders carry price 0: the venue prices BEST at the best
        opposite quote and PRIORITY at the best same-side quote. In a call auction the order
        only joins the book; it trades at the uncross."""
        priced = self._check(symbol, side, qty, price, order_type, tif)
        if isinstance(priced, Rejected):
            return SubmitResult(rejected=priced)
        price = priced
        order = VOrder(f"{self.next_no:010d}", symbol, side, qty, price, order_type, tif, now_ns)
        self.next_no += 1
        if self.phase_of(symbol) in AUCTIONS:
            self._add_open(order)
            self._join_queue(order)
            return SubmitResult(order=order)
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
                self._join_queue(order)
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
        self,
        symbol: str,
        side: Side,
        qty: int,
        price: int,
        order_type: OrderType,
        tif: TimeInForce,
    ) -> Rejected | int:
        """The order's price (set by the venue for BEST and PRIORITY), or why it is refused."""
        phase = self.phase_of(symbol)
        if phase is MarketPhase.CLOSED:
            return Rejected("MARKET_CLOSED", "the market is closed")
        inst = self.instruments.get(symbol)
        if inst is None:
            return Rejected("UNKNOWN_SYMBOL", f"unknown symbol {symbol!r}")
        if phase is MarketPhase.HALTED:
            return Rejected("HALTED", f"{symbol} is halted: cancels only")
        if qty <= 0:
            return Rejected("BAD_ORDER", f"quantity {qty} must be positive")
        if phase in AUCTIONS:
            if order_type not in AUCTION_TYPES:
                return Rejected(
                    "ORDER_TYPE_PHASE",
                    f"{order_type.value} orders are not accepted in {phase.value} "
                    "(a call auction takes LIMIT and MARKET only)",
                )
            if tif is not TimeInForce.DAY:
                return Rejected(
                    "TIF_PHASE",
                    f"{tif.value} works only in the continuous session, not {phase.value}",
                )
        if tif is not TimeInForce.DAY and order_type in (OrderType.CONDITIONAL, OrderType.PRIORITY):
            return Rejected("BAD_ORDER", f"{order_type.value} orders take no {tif.value} condition")
        if order_type in PRICED_BY_VENUE:
            if price != 0:
                return Rejected(
                    "BAD_ORDER",
                    f"a {order_type.value} order has price 0 (set by the venue), not {price}",
                )
            if order_type is not OrderType.MARKET:
                # BEST: the best opposite quote; PRIORITY: the best same-side quote
                opposite = order_type is OrderType.BEST
                book = self.asks if (side is Side.BUY) == opposite else self.bids
                levels = book.get(symbol, [])
                if not levels:
                    where = "opposite" if opposite else "same-side"
                    return Rejected(
                        "NO_QUOTE", f"{order_type.value}: no {where} quote for {symbol}"
                    )
                price = levels[0][0]
        else:
            kind = InstrumentKind(inst.kind)
            if price <= 0:
                return Rejected("BAD_ORDER", f"{order_type.value} price {price} must be positive")
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
        return price

    def _as_market(self, order: VOrder) -> bool:
        """MARKET, or CONDITIONAL once the closing auction has begun (krx.md section 4)."""
        if order.order_type is OrderType.CONDITIONAL:
            return self.market_phase in (MarketPhase.CLOSING_AUCTION, MarketPhase.CLOSED)
        return order.order_type is OrderType.MARKET or not order.price

    def _cap(self, order: VOrder) -> int:
        """The worst price `order` may trade at: its limit, or the daily limit for MARKET."""
        if not self._as_market(order):
            return order.price
        inst = self.instruments[order.symbol]
        return inst.upper_limit if order.side is Side.BUY else inst.lower_limit

    def _reserve_price(self, order: VOrder) -> int:
        if not self._as_market(order) or order.symbol not in self.instruments:
            return order.price
        return self.instruments[order.symbol].upper_limit

    def _join_queue(self, order: VOrder) -> None:
        """A resting order stands behind the size displayed at its price (queue model)."""
        if not self.queue_model or self._as_market(order):
            order.queue_ahead = 0
            return
        same = (self.bids if order.side is Side.BUY else self.asks).get(order.symbol, [])
        order.queue_ahead = sum(q for p, q in same if p == order.price)

    def _uncross(self, symbol: str, now_ns: int) -> tuple[list[VFill], list[VOrder]]:
        """Uncross `symbol`'s call auction: our orders and the last displayed book trade at one
        price (uncross_price). Priority: market orders, then better limits, then, at one price,
        the displayed shares before ours (we cannot know who came first: the conservative
        choice) and ours by time. Returns the fills and the market orders whose remainder was
        cancelled."""
        ours = self._resting(symbol)
        inst = self.instruments.get(symbol)
        if not ours or inst is None:
            return [], []
        kind = InstrumentKind(inst.kind)
        bids = self.bids.get(symbol, [])
        asks = self.asks.get(symbol, [])
        # (limit, qty, tiebreak, displayed level or our order); limit 0 = market
        buys: list[tuple[int, int, int, list[int] | VOrder]] = [
            (p, q, 0, lv) for lv in bids for p, q in [lv] if q > 0
        ]
        sells: list[tuple[int, int, int, list[int] | VOrder]] = [
            (p, q, 0, lv) for lv in asks for p, q in [lv] if q > 0
        ]
        for n, o in enumerate(ours, 1):
            limit = 0 if self._as_market(o) else o.price
            (buys if o.side is Side.BUY else sells).append((limit, o.leaves, n, o))
        reference = self.last_price.get(symbol, inst.base_price)
        found = uncross_price(
            [(p, q) for p, q, _, _ in buys], [(p, q) for p, q, _, _ in sells], reference, kind
        )
        fills: list[VFill] = []
        if found is not None:
            price, volume = found
            self.last_price[symbol] = price
            buy_order = sorted(buys, key=lambda e: (e[0] != 0, -e[0], e[2]))
            sell_order = sorted(sells, key=lambda e: (e[0] != 0, e[0], e[2]))
            for entries, executes in (
                (buy_order, lambda p: p == 0 or p >= price),
                (sell_order, lambda p: p == 0 or p <= price),
            ):
                left = volume
                for limit, qty, _, who in entries:
                    if left <= 0 or not executes(limit):
                        break
                    take = min(qty, left)
                    left -= take
                    if isinstance(who, VOrder):
                        fills.append(self._fill(who, take, price, now_ns))
                    else:
                        who[1] -= take  # displayed shares that traded in the uncross
        closed: list[VOrder] = []
        for o in ours:
            if o.status != OPEN:
                continue
            if o.order_type is OrderType.MARKET:
                self._cancel_now(o, "market order remainder after the uncross")
                closed.append(o)
            else:
                self._join_queue(o)  # behind what is still displayed at its price
        return fills, closed

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
