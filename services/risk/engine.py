"""Pre-trade checks (pure: time, state and fail-safe are passed in).

Every intent gets exactly one answer: a SubmitOrder, or an IntentDenied with a stable code
(protocol.codes.Reason) and a reason carrying the figures. Checks run cheapest first. Cancels
always pass. Positions and open orders come from execution's events (idempotent by seq), so the
holdings check sees sells already working at the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from protocol.codes import Reason
from protocol.enums import InstrumentKind, OrderType, Side, TradingState
from protocol.messages import (
    CancelIntent,
    CancelOrder,
    ExecEvent,
    Instrument,
    IntentDenied,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    SubmitOrder,
    Trade,
)
from services.runtime import ids, krx
from services.runtime.settings import RiskSettings

Decision = SubmitOrder | CancelOrder | IntentDenied


@dataclass
class _Open:
    symbol: str
    side: Side
    leaves: int
    approved_ns: int = 0  # > 0: approved here, execution has not confirmed it yet


class RiskEngine:
    def __init__(self, cfg: RiskSettings) -> None:
        self.cfg = cfg
        self.instruments: dict[str, Instrument] = {}
        self.last: dict[str, int] = {}
        self.positions: dict[tuple[str, str], int] = {}  # (strategy, symbol) -> shares
        self.account: dict[str, int] = {}  # symbol -> shares
        self.open: dict[str, _Open] = {}  # client_order_id -> working order
        self.exec_seq = 0
        self.approved = 0
        self.denied: dict[str, int] = {}

    # ------------------------------------------------------------------ state from streams
    def on_instrument(self, inst: Instrument) -> None:
        self.instruments[inst.symbol] = inst

    def on_trade(self, trade: Trade) -> None:
        self.last[trade.symbol] = trade.price

    def on_exec(self, event: ExecEvent) -> None:
        if event.seq and event.seq <= self.exec_seq:
            return
        self.exec_seq = max(self.exec_seq, event.seq)
        if isinstance(event, OrderSubmitted):
            self.open[event.client_order_id] = _Open(event.symbol, event.side, event.qty)
        elif isinstance(event, OrderFilled):
            delta = event.qty * event.side.sign
            key = (event.strategy, event.symbol)
            self.positions[key] = self.positions.get(key, 0) + delta
            self.account[event.symbol] = self.account.get(event.symbol, 0) + delta
            working = self.open.get(event.client_order_id)
            if working is not None:
                working.leaves = event.leaves_qty
                if event.leaves_qty <= 0:
                    del self.open[event.client_order_id]
        elif isinstance(event, OrderCanceled | OrderRejected):
            self.open.pop(event.client_order_id, None)
        elif isinstance(event, IntentDenied):
            # execution refused an order risk had approved (stale, not ready, halted)
            self.open.pop(ids.client_order_id(event.intent_id), None)

    def expire(self, now_ns: int) -> None:
        """Forget approvals execution never confirmed (lost with a crash): after this long it
        would have refused them as stale anyway."""
        limit = now_ns - (self.cfg.max_intent_age_ms + 5_000) * 1_000_000
        for coid in [c for c, o in self.open.items() if 0 < o.approved_ns < limit]:
            del self.open[coid]

    def committed_sells(self, symbol: str) -> int:
        return sum(
            o.leaves for o in self.open.values() if o.symbol == symbol and o.side is Side.SELL
        )

    # ------------------------------------------------------------------ decisions
    def decide(
        self,
        intent: OrderIntent | CancelIntent,
        state: TradingState,
        fresh: bool,
        now_ns: int,
        mono_ns: int,
    ) -> Decision:
        if isinstance(intent, CancelIntent):
            return CancelOrder(
                client_order_id=intent.client_order_id,
                strategy=intent.strategy,
                reason="strategy cancel",
            )
        refusal = self.check(intent, state, fresh, now_ns)
        if refusal is not None:
            code, reason = refusal
            self.denied[code] = self.denied.get(code, 0) + 1
            return IntentDenied(
                intent_id=intent.intent_id,
                strategy=intent.strategy,
                symbol=intent.symbol,
                side=intent.side,
                qty=intent.qty,
                price=intent.price,
                code=code,
                reason=reason,
                ts_ns=now_ns,
                trace=intent.trace,
            )
        self.approved += 1
        # committed from now on, not from when execution's OrderSubmitted arrives: two sells
        # approved in a row (or while execution is restarting) must not both count the same
        # shares as sellable
        self.open[ids.client_order_id(intent.intent_id)] = _Open(
            intent.symbol, intent.side, intent.qty, now_ns
        )
        return SubmitOrder(
            client_order_id=ids.client_order_id(intent.intent_id),
            intent_id=intent.intent_id,
            strategy=intent.strategy,
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            price=intent.price,
            order_type=intent.order_type,
            tif=intent.tif,
            reduce_only=intent.reduce_only,
            intent_ns=intent.created_ns,
            trace=msgspec.structs.replace(intent.trace, decided=mono_ns),
        )

    def check(
        self, i: OrderIntent, state: TradingState, fresh: bool, now_ns: int
    ) -> tuple[str, str] | None:
        cfg = self.cfg
        if state is TradingState.HALTED:
            return Reason.HALTED, "trading is HALTED"
        if not fresh:
            return Reason.FAILSAFE, "no word from the supervisor within the fail-safe time"
        if state is TradingState.REDUCING and not self.shrinks(i):
            pos = self.positions.get((i.strategy, i.symbol), 0)
            return Reason.REDUCE_ONLY, (
                f"REDUCING: {i.side.value} {i.qty} would not shrink position {pos}"
            )
        age_ms = (now_ns - i.created_ns) / 1e6
        if age_ms > cfg.max_intent_age_ms:
            return Reason.STALE_INTENT, (
                f"intent is {age_ms:.0f} ms old > max_intent_age_ms {cfg.max_intent_age_ms}"
            )
        if i.qty <= 0:
            return Reason.BAD_ORDER, f"qty {i.qty} must be positive"
        market = i.order_type is OrderType.MARKET
        if not market and i.price <= 0:
            return Reason.BAD_ORDER, f"limit price {i.price} must be positive"
        inst = self.instruments.get(i.symbol)
        if inst is None:
            return Reason.UNKNOWN_SYMBOL, f"no reference data for {i.symbol}"
        kind = InstrumentKind(inst.kind)
        if not market and not krx.on_tick(i.price, kind):
            return Reason.TICK_SIZE, (
                f"price {i.price} is not a multiple of the tick {krx.tick_size(i.price, kind)}"
            )
        if not market and not inst.lower_limit <= i.price <= inst.upper_limit:
            return Reason.PRICE_LIMIT, (
                f"price {i.price} outside the daily limits [{inst.lower_limit}, {inst.upper_limit}]"
            )
        if i.qty > cfg.max_order_qty:
            return Reason.MAX_ORDER_QTY, f"qty {i.qty} > max_order_qty {cfg.max_order_qty}"
        notional = i.qty * (inst.upper_limit if market else i.price)
        if notional > cfg.max_order_notional:
            return Reason.MAX_ORDER_NOTIONAL, (
                f"notional {notional:,} > max_order_notional {cfg.max_order_notional:,}"
            )
        if i.side is Side.SELL:
            held = self.account.get(i.symbol, 0)
            committed = self.committed_sells(i.symbol)
            if i.qty > held - committed:
                return Reason.INSUFFICIENT_HOLDINGS, (
                    f"sell {i.qty} > held {held} - committed to open sells {committed}"
                )
        return None

    def shrinks(self, i: OrderIntent) -> bool:
        pos = self.positions.get((i.strategy, i.symbol), 0)
        if i.side is Side.SELL:
            return 0 < i.qty <= pos
        return 0 < i.qty <= -pos
