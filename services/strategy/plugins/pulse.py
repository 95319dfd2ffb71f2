"""pulse: deterministic, for tests and benchmarks. Every N trades of a symbol it alternately
buys and sells `qty` shares at a marketable limit (buy at the best ask, sell at the best bid),
starting with a buy; it only sells shares it holds (else it buys). With passive_ticks > 0 it
rests that many ticks behind the touch instead (buy below the best bid, sell above the best ask),
so its orders stay open: used to measure how fast a halt cancels them."""

from __future__ import annotations

from protocol.enums import Side
from protocol.messages import MarketData, Trade
from services.runtime import krx
from services.strategy.api import Context, Strategy


class Pulse(Strategy):
    name = "pulse"

    def __init__(
        self, every: int, qty: int = 1, symbols: list[str] | None = None, passive_ticks: int = 0
    ) -> None:
        self.every = every
        self.passive_ticks = passive_ticks
        self.qty = qty
        self.symbols = {str(s) for s in symbols or []}
        self.counts: dict[str, int] = {}
        self.next_side: dict[str, Side] = {}

    def on_market(self, event: MarketData, ctx: Context) -> None:
        if not isinstance(event, Trade):
            return
        symbol = event.symbol
        if self.symbols and symbol not in self.symbols:
            return
        n = self.counts.get(symbol, 0) + 1
        self.counts[symbol] = n
        if n % self.every:
            return
        side = self.next_side.get(symbol, Side.BUY)
        if side is Side.SELL and ctx.position(symbol) < self.qty:
            side = Side.BUY
        book = ctx.book(symbol)
        inst = ctx.instrument(symbol)
        kind = inst.kind if inst else krx.InstrumentKind.STOCK
        if side is Side.BUY:
            if self.passive_ticks:
                touch = book.bids[0][0] if book and book.bids else event.price
                price = krx.ticks_away(touch, -self.passive_ticks, kind)
            else:
                price = book.asks[0][0] if book and book.asks else event.price
            sent = ctx.buy(symbol, self.qty, price)
        else:
            if self.passive_ticks:
                touch = book.asks[0][0] if book and book.asks else event.price
                price = krx.ticks_away(touch, self.passive_ticks, kind)
            else:
                price = book.bids[0][0] if book and book.bids else event.price
            sent = ctx.sell(symbol, self.qty, price)
        if sent is not None:
            self.next_side[symbol] = side.opposite()
