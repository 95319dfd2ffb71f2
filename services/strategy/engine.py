"""Hosts the strategies, routes market data and each strategy's own order events to it, and
collects the intents they ask for (pure: clocks and state are passed in).

Intent ids are deterministic: the n-th intent a strategy derives from market event
(stream, seq) is always `<strategy>:<stream>:<seq>:<n>`, so a restarted strategy that sees the
same event asks for the same id and execution never makes a second order of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol.enums import OrderType, Side, TimeInForce, TradingState
from protocol.messages import (
    Book,
    CancelIntent,
    ExecEvent,
    Instrument,
    IntentDenied,
    MarketData,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    PhaseChanged,
    Trace,
    Trade,
)
from services.runtime import ids
from services.runtime.calendar import CLOSING_AUCTION
from services.strategy.api import Context, Strategy, WorkingOrder

Intent = OrderIntent | CancelIntent
PENDING_TIMEOUT_NS = 5_000_000_000  # an intent never answered (dropped in transit) stops blocking


class StrategyEngine:
    def __init__(
        self,
        strategies: list[Strategy],
        params: dict[str, dict[str, Any]],
        state_dir: Path,
        flatten_before_close_min: float = 0.0,
    ) -> None:
        self.strategies = strategies
        # session end: strategies that ask for it are told this long before the closing auction
        self.session_end_lead_ns = int(
            (CLOSING_AUCTION.total_seconds() + flatten_before_close_min * 60) * 1e9
        )
        self.closes_ns = 0  # today's session end (PhaseChanged.closes_ns), 0 = none known
        self.exch_now_ns = 0  # the exchange clock: the latest market-data timestamp
        self.session_ended = 0  # closes_ns of the session whose end was announced
        self.contexts = {
            s.name: Context(self, s.name, params.get(s.name, {}), state_dir) for s in strategies
        }
        self.trading_state = TradingState.HALTED
        self.now_ns = 0
        self._mono = 0
        self._observed = 0
        self._cause: tuple[int, int] = (0, 0)
        self._n: dict[str, int] = {}
        self._timer_count = 0
        self.out: list[Intent] = []
        self.books: dict[str, Book] = {}
        self.last_prices: dict[str, int] = {}
        self.instruments: dict[str, Instrument] = {}
        self.exec_seq = 0
        self.suppressed = 0
        # replaying: market data from the observer's history (warm-up at start, or a gap being
        # recovered) reaches the strategies so their state is right, but whatever they ask for
        # meanwhile is counted here and never sent: a restarted strategy already acted on it,
        # and a late message is no ground for an order (the next live one decides)
        self.replaying = False
        self.replay_suppressed = 0

    def start(self) -> None:
        for s in self.strategies:
            s.on_start(self.contexts[s.name])

    # ------------------------------------------------------------------ inputs
    def on_market(self, event: MarketData, now_ns: int, mono_ns: int) -> list[Intent]:
        if isinstance(event, Trade):
            self.last_prices[event.symbol] = event.price
        elif isinstance(event, Book):
            self.books[event.symbol] = event
        elif isinstance(event, Instrument):
            self.instruments[event.symbol] = event
        self._begin(
            now_ns,
            mono_ns,
            (getattr(event, "stream", 0), getattr(event, "seq", 0)),
            getattr(getattr(event, "trace", None), "observed", 0),
        )
        for s in self.strategies:
            s.on_market(event, self.contexts[s.name])
        if isinstance(event, PhaseChanged) and event.symbol == "":
            self.closes_ns = event.closes_ns
        self.exch_now_ns = max(self.exch_now_ns, getattr(event, "exch_ns", 0))
        self.check_session_end()
        return self._flush()

    def check_session_end(self) -> None:
        """Once per session, at closes - closing auction - flatten_before_close_min by the
        exchange clock (so a replay ends its day on time too)."""
        closes = self.closes_ns
        if not closes or closes == self.session_ended or self.replaying:
            return  # decided on the first live message, not swallowed by a replay
        if self.exch_now_ns < closes - self.session_end_lead_ns:
            return
        self.session_ended = closes
        for s in self.strategies:
            if s.flatten_before_close:
                s.on_session_end(closes, self.contexts[s.name])

    def on_exec(self, event: ExecEvent, now_ns: int, mono_ns: int) -> list[Intent]:
        """Apply one execution event (idempotent by seq) and let its strategy react."""
        if event.seq and event.seq <= self.exec_seq:
            return []
        self.exec_seq = max(self.exec_seq, event.seq)
        ctx = self.contexts.get(event.strategy)
        if ctx is None:
            return []
        self.apply(ctx, event)
        self._begin(now_ns, mono_ns, (0, event.seq), 0, prefix="x")
        for s in self.strategies:
            if s.name == event.strategy:
                s.on_order_event(event, ctx)
        return self._flush()

    def warm(self, event: ExecEvent) -> None:
        """Rebuild a strategy's positions and working orders from history, without waking it:
        a restarted strategy must not act again on what it already acted on."""
        if event.seq and event.seq <= self.exec_seq:
            return
        self.exec_seq = max(self.exec_seq, event.seq)
        ctx = self.contexts.get(event.strategy)
        if ctx is not None:
            self.apply(ctx, event)

    def on_timer(self, now_ns: int, mono_ns: int) -> list[Intent]:
        self._timer_count += 1
        self._begin(now_ns, mono_ns, (0, self._timer_count), 0, prefix="t")
        for ctx in self.contexts.values():
            for intent_id, pending in list(ctx.pending.items()):
                if now_ns - pending[3] > PENDING_TIMEOUT_NS:
                    del ctx.pending[intent_id]
        for s in self.strategies:
            s.on_timer(now_ns, self.contexts[s.name])
        return self._flush()

    @staticmethod
    def apply(ctx: Context, event: ExecEvent) -> None:
        """Keep the strategy's own positions and working orders."""
        if isinstance(event, OrderSubmitted):
            ctx.pending.pop(event.intent_id, None)
            ctx.working[event.client_order_id] = WorkingOrder(
                event.client_order_id,
                event.intent_id,
                event.symbol,
                event.side,
                event.qty,
                event.price,
                event.qty,
                event.ts_ns,
            )
        elif isinstance(event, OrderFilled):
            ctx.positions[event.symbol] = ctx.positions.get(event.symbol, 0) + (
                event.qty * event.side.sign
            )
            order = ctx.working.get(event.client_order_id)
            if order is not None:
                order.leaves = event.leaves_qty
                if event.leaves_qty <= 0:
                    del ctx.working[event.client_order_id]
                    ctx.cancelling.discard(event.client_order_id)
        elif isinstance(event, OrderCanceled | OrderRejected):
            ctx.working.pop(event.client_order_id, None)
            ctx.cancelling.discard(event.client_order_id)
        elif isinstance(event, IntentDenied):
            ctx.pending.pop(event.intent_id, None)

    # ------------------------------------------------------------------ actions
    def _begin(
        self, now_ns: int, mono_ns: int, cause: tuple[int, int], observed: int, prefix: str = ""
    ) -> None:
        self.now_ns, self._mono, self._observed = now_ns, mono_ns, observed
        self._cause = cause if not prefix else (0, cause[1])
        self._prefix = prefix
        self._n = {}

    def _next_id(self, strategy: str) -> str:
        n = self._n.get(strategy, 0)
        self._n[strategy] = n + 1
        stream, seq = self._cause
        if self._prefix:
            return f"{strategy}:{self._prefix}{self.now_ns}:{seq}:{n}"
        return ids.intent_id(strategy, stream, seq, n)

    def intend(
        self,
        ctx: Context,
        symbol: str,
        side: Side,
        qty: int,
        price: int,
        order_type: OrderType,
        tif: TimeInForce,
        reduce_only: bool,
    ) -> str | None:
        if self.replaying:
            self.replay_suppressed += 1
            return None
        state = self.trading_state
        if state is TradingState.HALTED:
            self.suppressed += 1
            return None
        if state is TradingState.REDUCING:
            pos = ctx.position(symbol)
            shrinks = (side is Side.SELL and 0 < qty <= pos) or (
                side is Side.BUY and 0 < qty <= -pos
            )
            if not shrinks:
                self.suppressed += 1
                return None
            reduce_only = True
        intent_id = self._next_id(ctx.strategy)
        self.out.append(
            OrderIntent(
                intent_id=intent_id,
                strategy=ctx.strategy,
                symbol=symbol,
                side=side,
                qty=qty,
                price=price,
                order_type=order_type,
                tif=tif,
                reduce_only=reduce_only,
                created_ns=self.now_ns,
                trace=Trace(observed=self._observed, evaluated=self._mono),
            )
        )
        ctx.pending[intent_id] = (symbol, side, qty, self.now_ns)
        return intent_id

    def cancel(self, ctx: Context, client_order_id: str) -> None:
        if client_order_id not in ctx.working or client_order_id in ctx.cancelling:
            return
        if self.replaying:
            self.replay_suppressed += 1
            return
        ctx.cancelling.add(client_order_id)
        self.out.append(
            CancelIntent(
                intent_id=self._next_id(ctx.strategy),
                strategy=ctx.strategy,
                client_order_id=client_order_id,
                created_ns=self.now_ns,
            )
        )

    def _flush(self) -> list[Intent]:
        out, self.out = self.out, []
        return out


def build_strategies(
    scope: str, settings: Any, factory: dict[str, Callable[[Any], Strategy]]
) -> list[Strategy]:
    if scope not in factory:
        raise ValueError(f"unknown strategy scope {scope!r}; choose from {sorted(factory)}")
    return [factory[scope](settings)]
