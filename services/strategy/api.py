"""The plugin API. A strategy sees market data, its own order events and timers, and asks for
orders through its Context. It never touches a socket, a broker or another strategy's orders.

    class MyStrategy(Strategy):
        name = "mine"
        def on_market(self, event, ctx):
            if isinstance(event, Trade) and ctx.position(event.symbol) == 0:
                ctx.buy(event.symbol, 1, event.price)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.enums import OrderType, Side, TimeInForce, TradingState
from protocol.messages import Book, ExecEvent, Instrument, MarketData

if TYPE_CHECKING:
    from services.strategy.engine import StrategyEngine


@dataclass
class WorkingOrder:
    client_order_id: str
    intent_id: str
    symbol: str
    side: Side
    qty: int
    price: int
    leaves: int
    submitted_ns: int


class Context:
    """What one strategy may see and do. Built by the engine, one per strategy."""

    def __init__(
        self, engine: StrategyEngine, strategy: str, params: dict[str, Any], state_dir: Path
    ) -> None:
        self._engine = engine
        self.strategy = strategy
        self.params = params
        self.state_dir = state_dir
        self.positions: dict[str, int] = {}
        self.working: dict[str, WorkingOrder] = {}  # client_order_id -> order
        self.pending: dict[str, tuple[str, Side, int, int]] = {}  # intent -> sym, side, qty, ns
        self.cancelling: set[str] = set()  # client order ids a cancel was already asked for

    # ------------------------------------------------------------------ views
    @property
    def now_ns(self) -> int:
        return self._engine.now_ns

    @property
    def trading_state(self) -> TradingState:
        return self._engine.trading_state

    def position(self, symbol: str) -> int:
        return self.positions.get(symbol, 0)

    def open_orders(self, symbol: str | None = None) -> list[WorkingOrder]:
        return [o for o in self.working.values() if symbol is None or o.symbol == symbol]

    def has_pending(self, symbol: str) -> bool:
        """An intent for this symbol is on its way and has not been answered yet."""
        return any(p[0] == symbol for p in self.pending.values())

    def book(self, symbol: str) -> Book | None:
        return self._engine.books.get(symbol)

    def last_price(self, symbol: str) -> int:
        return self._engine.last_prices.get(symbol, 0)

    def instrument(self, symbol: str) -> Instrument | None:
        return self._engine.instruments.get(symbol)

    # ------------------------------------------------------------------ actions
    def buy(
        self,
        symbol: str,
        qty: int,
        price: int,
        order_type: OrderType = OrderType.LIMIT,
        tif: TimeInForce = TimeInForce.DAY,
        reduce_only: bool = False,
    ) -> str | None:
        return self._engine.intend(self, symbol, Side.BUY, qty, price, order_type, tif, reduce_only)

    def sell(
        self,
        symbol: str,
        qty: int,
        price: int,
        order_type: OrderType = OrderType.LIMIT,
        tif: TimeInForce = TimeInForce.DAY,
        reduce_only: bool = False,
    ) -> str | None:
        return self._engine.intend(
            self, symbol, Side.SELL, qty, price, order_type, tif, reduce_only
        )

    def cancel(self, client_order_id: str) -> None:
        self._engine.cancel(self, client_order_id)


class Strategy:
    """Base class: override what you need. Every hook may call ctx.buy/sell/cancel."""

    name = "strategy"

    def on_start(self, ctx: Context) -> None:
        pass

    def on_market(self, event: MarketData, ctx: Context) -> None:
        pass

    def on_order_event(self, event: ExecEvent, ctx: Context) -> None:
        pass

    def on_timer(self, now_ns: int, ctx: Context) -> None:
        pass

    # True: the engine calls on_session_end `session.flatten_before_close_min` minutes before
    # the closing auction (exchange clock, from the market data), once per session
    flatten_before_close = False

    def on_session_end(self, closes_ns: int, ctx: Context) -> None:
        """Time to close the day's positions (only if flatten_before_close)."""
