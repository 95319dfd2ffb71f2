"""scalp: a reference scalper on order-book imbalance and short-term momentum.

Entry: flat, nothing working, top-3 book imbalance above `imbalance` and fast EMA of trade
prices above the slow one -> buy at the best bid (passive). Exit: a resting sell `take_ticks`
above the entry; if the price falls `stop_ticks` below the entry, cancel it and sell at the best
bid once the cancel is confirmed. An entry not filled within `entry_timeout_ms` is cancelled.
Long only (no short selling for retail accounts). It flattens with reduce-only orders, again on
every timer until flat, `session.flatten_before_close_min` minutes before the closing auction
(the engine's on_session_end) and at the latest when the closing auction starts.

Parameters (settings.strategy.params.scalp): imbalance 0.3, fast 0.3, slow 0.05 (EMA weights),
take_ticks 2, stop_ticks 3, entry_timeout_ms 3000, notional 2,000,000 KRW per entry.
"""

from __future__ import annotations

from protocol.enums import MarketPhase, Side
from protocol.messages import Book, ExecEvent, MarketData, OrderFilled, PhaseChanged, Trade
from services.runtime import krx
from services.strategy.api import Context, Strategy


class Scalp(Strategy):
    name = "scalp"

    def __init__(self) -> None:
        self.fast: dict[str, float] = {}
        self.slow: dict[str, float] = {}
        self.entry: dict[str, int] = {}
        self.closing = False
        self.ended_ns = 0  # the session (by its closes_ns) this strategy has ended early

    flatten_before_close = True

    def p(self, ctx: Context, key: str, default: float) -> float:
        return float(ctx.params.get(key, default))

    def on_market(self, event: MarketData, ctx: Context) -> None:
        if isinstance(event, PhaseChanged) and event.symbol == "":
            self.closing = event.phase in (MarketPhase.CLOSING_AUCTION, MarketPhase.CLOSED) or (
                event.closes_ns != 0 and event.closes_ns == self.ended_ns
            )
            if self.closing:
                self.flatten(ctx)
            return
        if isinstance(event, Trade):
            fa, sa = self.p(ctx, "fast", 0.3), self.p(ctx, "slow", 0.05)
            f = self.fast.get(event.symbol, event.price)
            s = self.slow.get(event.symbol, event.price)
            self.fast[event.symbol] = f + fa * (event.price - f)
            self.slow[event.symbol] = s + sa * (event.price - s)
            self.manage(event.symbol, event.price, ctx)
        elif isinstance(event, Book) and not self.closing:
            self.maybe_enter(event, ctx)

    def maybe_enter(self, book: Book, ctx: Context) -> None:
        sym = book.symbol
        if (
            ctx.position(sym)
            or ctx.open_orders(sym)
            or ctx.has_pending(sym)
            or not book.bids
            or not book.asks
        ):
            return
        bid_qty = sum(q for _, q in book.bids[:3])
        ask_qty = sum(q for _, q in book.asks[:3])
        if bid_qty + ask_qty == 0:
            return
        imbalance = (bid_qty - ask_qty) / (bid_qty + ask_qty)
        if imbalance < self.p(ctx, "imbalance", 0.3):
            return
        if self.fast.get(sym, 0.0) <= self.slow.get(sym, 0.0):
            return
        price = book.bids[0][0]
        qty = int(self.p(ctx, "notional", 2_000_000)) // price
        if qty > 0:
            ctx.buy(sym, qty, price)

    def on_order_event(self, event: ExecEvent, ctx: Context) -> None:
        if isinstance(event, OrderFilled) and event.side is Side.BUY:
            self.entry[event.symbol] = event.price
            pos = ctx.position(event.symbol)
            if event.leaves_qty == 0 and pos > 0:
                inst = ctx.instrument(event.symbol)
                kind = inst.kind if inst else krx.InstrumentKind.STOCK
                target = krx.ticks_away(event.price, int(self.p(ctx, "take_ticks", 2)), kind)
                ctx.sell(event.symbol, pos, target, reduce_only=True)

    def manage(self, sym: str, last: int, ctx: Context) -> None:
        pos = ctx.position(sym)
        entry = self.entry.get(sym)
        if pos <= 0 or entry is None:
            return
        inst = ctx.instrument(sym)
        kind = inst.kind if inst else krx.InstrumentKind.STOCK
        stop = krx.ticks_away(entry, -int(self.p(ctx, "stop_ticks", 3)), kind)
        if last <= stop:
            self.exit_now(sym, pos, ctx)

    def exit_now(self, sym: str, pos: int, ctx: Context) -> None:
        working = ctx.open_orders(sym)
        for order in working:
            ctx.cancel(order.client_order_id)
        # a resting take-profit still commits the shares: a sell now would be refused by risk
        # (no naked short), so the exit goes out once the cancel is confirmed (next trade/timer)
        if working or ctx.has_pending(sym):
            return
        book = ctx.book(sym)
        price = book.bids[0][0] if book and book.bids else ctx.last_price(sym)
        if price:
            ctx.sell(sym, pos, price, reduce_only=True)

    def on_session_end(self, closes_ns: int, ctx: Context) -> None:
        self.ended_ns = closes_ns
        self.closing = True
        self.flatten(ctx)

    def flatten(self, ctx: Context) -> None:
        for order in ctx.open_orders():
            if order.side is Side.BUY:
                ctx.cancel(order.client_order_id)
        for sym, pos in list(ctx.positions.items()):
            if pos <= 0:
                continue
            book = ctx.book(sym)
            bid = book.bids[0][0] if book and book.bids else ctx.last_price(sym)
            sells = [o for o in ctx.open_orders(sym) if o.side is Side.SELL]
            if sells and all(o.price <= bid for o in sells):
                continue  # exits already at the market: cancelling them would only delay
            self.exit_now(sym, pos, ctx)

    def on_timer(self, now_ns: int, ctx: Context) -> None:
        if self.closing:
            self.flatten(ctx)  # again until flat: exits wait for their cancels to confirm
            return
        timeout_ns = int(self.p(ctx, "entry_timeout_ms", 3000)) * 1_000_000
        for order in ctx.open_orders():
            if order.side is Side.BUY and now_ns - order.submitted_ns > timeout_ns:
                ctx.cancel(order.client_order_id)
