"""Pre-trade checks (pure: time, state and fail-safe are passed in).

Every intent gets exactly one answer: a SubmitOrder, or an IntentDenied with a stable code
(protocol.codes.Reason) and a reason carrying the figures. Checks run cheapest first; the list,
codes and defaults are in docs/risk.md. Cancels pass, except past the cancels-per-day limit.

State comes from the streams: reference data and last trades (observer), market phases
(PhaseChanged), positions, fills and working orders (execution's events, idempotent by seq). An
approval commits its shares, cash and counts at once, not when execution confirms it, so two
orders approved in a row never both use the same room under a limit.

Every limit is kept as a running total in a _Tally (account, account x symbol, strategy,
strategy x symbol), updated by approvals, execution's events and last-trade marks, so a decision
costs the same however many orders are open.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import msgspec

from protocol.codes import Reason
from protocol.enums import (
    InstrumentKind,
    Market,
    MarketPhase,
    OrderType,
    Side,
    TimeInForce,
    TradingState,
)
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
    PhaseChanged,
    SubmitOrder,
    Trade,
)
from services.runtime import ids, krx
from services.runtime.settings import (
    AccountSettings,
    BrokerSettings,
    RiskOverride,
    RiskSettings,
    StrategyRisk,
)

Decision = SubmitOrder | CancelOrder | IntentDenied
Refusal = tuple[str, str]

_DAY_NS = 86_400 * 1_000_000_000
_KST_OFFSET_NS = 9 * 3_600 * 1_000_000_000  # KST has no daylight saving time
_KST = dt.timezone(dt.timedelta(hours=9))

# The account's submit throttle when risk.submit_rate_per_s is unset: (rate per second, burst),
# from the brokers' documented limits (../shared/brokers/*.md section 6.1), chosen so that no
# one-second window holds more than the documented count (rate + burst <= limit, 1/s accounts
# send one a second). Keyed by (broker.type, broker.mode).
BROKER_RATES: dict[tuple[str, str], tuple[float, int]] = {
    ("kis", "live"): (15.0, 3),  # KIS: 18 requests/s per account (portal notice 2026-04-20)
    ("kis", "paper"): (1.0, 1),  # KIS demo (모의): 1 request/s
    ("kiwoom", "live"): (4.0, 1),  # Kiwoom: orders 5/s (kiwoom.md 6.1, practical plan)
    ("kiwoom", "paper"): (1.0, 1),  # Kiwoom mock: 1/s
    ("paper", "paper"): (1_000.0, 100),  # the paper venue: no broker limit, a generous default
    ("paper", "live"): (1_000.0, 100),
}

_CONTINUOUS = MarketPhase.CONTINUOUS
_AUCTIONS = frozenset({MarketPhase.PRE_OPEN, MarketPhase.CLOSING_AUCTION, MarketPhase.VI})
_SYMBOL_OVERRIDES = frozenset({MarketPhase.VI, MarketPhase.HALTED})


def kst_day(ns: int) -> int:
    """Days since the epoch in Korea: counters reset when this changes."""
    return (ns + _KST_OFFSET_NS) // _DAY_NS


def submit_rate(cfg: RiskSettings, broker: BrokerSettings) -> tuple[float, int]:
    rate, burst = BROKER_RATES[(broker.type, broker.mode)]
    if cfg.submit_rate_per_s is not None:
        rate = cfg.submit_rate_per_s
        burst = max(1, int(rate)) if cfg.submit_burst is None else burst
    if cfg.submit_burst is not None:
        burst = cfg.submit_burst
    return rate, burst


class _Tally:
    """Running totals for one scope. Per-symbol scopes hold `pos`; totals (account, strategy)
    hold `value` (sum of pos x mark), `gross` (sum of |pos| x mark) and cash flows."""

    __slots__ = (
        "buy_notional",
        "buy_qty",
        "cancels",
        "cash",
        "cash_day",
        "gross",
        "open_count",
        "orders",
        "pos",
        "sell_notional",
        "sell_qty",
        "start_value",
        "total",
        "value",
    )

    def __init__(self, total: _Tally | None = None) -> None:
        self.pos = 0
        self.value = 0
        self.gross = 0
        self.open_count = 0
        self.buy_qty = 0
        self.sell_qty = 0
        self.buy_notional = 0
        self.sell_notional = 0
        self.orders = 0  # approvals this KST day
        self.cancels = 0  # cancels passed this KST day
        self.cash = 0  # all fills' cash flow, fees and taxes included
        self.cash_day = 0  # the same, this KST day
        self.start_value = 0  # `value` when the day began
        self.total = total

    def day_pnl(self) -> int:
        return self.cash_day + self.value - self.start_value


@dataclass(slots=True)
class _Open:
    strategy: str
    symbol: str
    side: Side
    leaves: int
    price: int  # the price it can trade at (market: its side's daily limit), for self-cross
    notional_px: int  # the price its notional is counted at (market: the upper limit)
    approved_ns: int = 0  # > 0: approved here, execution has not confirmed it yet
    tallies: tuple[_Tally, ...] = ()  # account, account x symbol, strategy, strategy x symbol


@dataclass(slots=True)
class _Limits:
    """The limits for one (strategy, symbol), resolved once from the settings."""

    max_intent_age_ns: int
    max_order_qty: int
    max_order_notional: int
    price_collar_bp: int | None
    duplicate_window_ns: int
    # account x symbol
    position_qty: int | None
    position_notional: int | None
    open_orders: int | None
    orders_per_day: int | None
    cancels_per_day: int | None
    # the strategy's own
    s_position_qty: int | None
    s_position_notional: int | None
    s_open_orders: int | None
    s_orders_per_day: int | None
    s_cancels_per_day: int | None
    s_gross: int | None
    s_net: int | None
    s_daily_loss: int | None


def _either(g: int | None, a: int | None, b: int | None) -> int | None:
    """Strategy and symbol each replace the global value; when both are set the smaller wins."""
    vals = [v for v in (a, b) if v is not None]
    return min(vals) if vals else g


class RiskEngine:
    def __init__(
        self,
        cfg: RiskSettings,
        account: AccountSettings | None = None,
        broker: BrokerSettings | None = None,
    ) -> None:
        self.cfg = cfg
        self.acct_cfg = account or AccountSettings()
        self.rate, self.burst = submit_rate(cfg, broker or BrokerSettings())
        fee = Fraction(str(self.acct_cfg.commission_rate_bp))
        self._fee_num, self._fee_den = fee.numerator, fee.denominator * 10_000
        self.instruments: dict[str, Instrument] = {}
        self.last: dict[str, int] = {}  # last trade
        self.mark: dict[str, int] = {}  # last trade, else the base price
        self.market_phase: MarketPhase | None = None
        self.symbol_phase: dict[str, MarketPhase] = {}  # VI / HALTED only
        self.open: dict[str, _Open] = {}  # client_order_id -> working order
        self.open_by_symbol: dict[str, dict[str, _Open]] = {}
        self.acct = _Tally()
        self.sym_t: dict[str, _Tally] = {}
        self.strat_t: dict[str, _Tally] = {}
        self.ss_t: dict[tuple[str, str], _Tally] = {}
        self.holders: dict[str, list[_Tally]] = {}  # symbol -> its per-symbol tallies
        self.day = -1
        self.tokens = float(self.burst)
        self.tokens_mono = 0
        self.recent: dict[tuple[str, str, Side, int, int], int] = {}  # -> approval mono ns
        self.limits: dict[tuple[str, str], _Limits] = {}
        self._passed: tuple[_Tally, _Tally, _Tally, tuple[str, str, Side, int, int]]
        self.exec_seq = 0
        self.approved = 0
        self.denied: dict[str, int] = {}

    # ------------------------------------------------------------------ settings
    def limits_for(self, strategy: str, symbol: str) -> _Limits:
        lim = self.limits.get((strategy, symbol))
        if lim is None:
            lim = self.limits[(strategy, symbol)] = self._resolve(strategy, symbol)
        return lim

    def _resolve(self, strategy: str, symbol: str) -> _Limits:
        g = self.cfg
        s = g.strategies.get(strategy) or StrategyRisk()
        y = g.symbols.get(symbol) or RiskOverride()
        qty = _either(g.max_order_qty, s.max_order_qty, y.max_order_qty)
        notional = _either(g.max_order_notional, s.max_order_notional, y.max_order_notional)
        age = s.max_intent_age_ms or g.max_intent_age_ms
        window = g.duplicate_window_ms if s.duplicate_window_ms is None else s.duplicate_window_ms
        assert qty is not None and notional is not None
        return _Limits(
            max_intent_age_ns=age * 1_000_000,
            max_order_qty=qty,
            max_order_notional=notional,
            price_collar_bp=_either(g.price_collar_bp, s.price_collar_bp, y.price_collar_bp),
            duplicate_window_ns=window * 1_000_000,
            position_qty=_pick(y.max_position_qty, g.max_position_qty),
            position_notional=_pick(y.max_position_notional, g.max_position_notional),
            open_orders=_pick(y.max_open_orders, g.max_open_orders_per_symbol),
            orders_per_day=_pick(y.max_orders_per_day, g.max_orders_per_day_per_symbol),
            cancels_per_day=_pick(y.max_cancels_per_day, g.max_cancels_per_day_per_symbol),
            s_position_qty=s.max_position_qty,
            s_position_notional=s.max_position_notional,
            s_open_orders=s.max_open_orders,
            s_orders_per_day=s.max_orders_per_day,
            s_cancels_per_day=s.max_cancels_per_day,
            s_gross=s.max_gross_exposure,
            s_net=s.max_net_exposure,
            s_daily_loss=s.max_daily_loss,
        )

    # ------------------------------------------------------------------ tallies
    def _sym(self, symbol: str) -> _Tally:
        t = self.sym_t.get(symbol)
        if t is None:
            t = self.sym_t[symbol] = _Tally(self.acct)
            self.holders.setdefault(symbol, []).append(t)
        return t

    def _strat(self, strategy: str) -> _Tally:
        t = self.strat_t.get(strategy)
        if t is None:
            t = self.strat_t[strategy] = _Tally()
        return t

    def _ss(self, strategy: str, symbol: str) -> _Tally:
        t = self.ss_t.get((strategy, symbol))
        if t is None:
            t = self.ss_t[(strategy, symbol)] = _Tally(self._strat(strategy))
            self.holders.setdefault(symbol, []).append(t)
        return t

    def position(self, strategy: str, symbol: str) -> int:
        t = self.ss_t.get((strategy, symbol))
        return t.pos if t is not None else 0

    def holding(self, symbol: str) -> int:
        t = self.sym_t.get(symbol)
        return t.pos if t is not None else 0

    def committed_sells(self, symbol: str) -> int:
        t = self.sym_t.get(symbol)
        return t.sell_qty if t is not None else 0

    def cash(self) -> int:
        return self.acct_cfg.initial_cash + self.acct.cash

    def _open_delta(self, o: _Open, dq: int) -> None:
        """`dq` more (or, negative, fewer) shares of `o` working."""
        dn = dq * o.notional_px
        if o.side is Side.BUY:
            for t in o.tallies:
                t.buy_qty += dq
                t.buy_notional += dn
        else:
            for t in o.tallies:
                t.sell_qty += dq
                t.sell_notional += dn
        o.leaves += dq

    def _add_open(self, coid: str, o: _Open) -> None:
        leaves, o.leaves = o.leaves, 0
        o.tallies = (
            self.acct,
            self._sym(o.symbol),
            self._strat(o.strategy),
            self._ss(o.strategy, o.symbol),
        )
        self.open[coid] = o
        self.open_by_symbol.setdefault(o.symbol, {})[coid] = o
        for t in o.tallies:
            t.open_count += 1
        self._open_delta(o, leaves)

    def _remove_open(self, coid: str) -> None:
        o = self.open.pop(coid, None)
        if o is None:
            return
        del self.open_by_symbol[o.symbol][coid]
        self._open_delta(o, -o.leaves)
        for t in o.tallies:
            t.open_count -= 1

    def _set_mark(self, symbol: str, price: int) -> None:
        old = self.mark.get(symbol, 0)
        if price == old:
            return
        self.mark[symbol] = price
        d = price - old
        for t in self.holders.get(symbol, ()):
            if t.pos:
                total = t.total
                assert total is not None
                total.value += t.pos * d
                total.gross += abs(t.pos) * d

    def _fill(self, e: OrderFilled) -> None:
        symbol = e.symbol
        if symbol not in self.mark:
            self._set_mark(symbol, e.price)
        mark = self.mark[symbol]
        notional = e.qty * e.price
        fees = krx.commission(notional, self.acct_cfg.commission_rate_bp)
        if e.side is Side.SELL:
            inst = self.instruments.get(symbol)
            market = inst.market if inst else Market.KOSPI
            kind = inst.kind if inst else InstrumentKind.STOCK
            day = dt.datetime.fromtimestamp(e.ts_ns / 1e9, _KST).date()
            fees += krx.sell_tax(notional, market, krx.add_business_days(day, 2), kind)
        flow = -e.side.sign * notional - fees
        today = kst_day(e.ts_ns) == self.day
        dq = e.qty * e.side.sign
        for t in (self._sym(symbol), self._ss(e.strategy, symbol)):
            total = t.total
            assert total is not None
            old = t.pos
            t.pos = old + dq
            total.value += dq * mark
            total.gross += (abs(t.pos) - abs(old)) * mark
            total.cash += flow
            if today:
                total.cash_day += flow
            else:  # an earlier day's fill (history): its effect is in today's opening value
                total.start_value += dq * mark

    def _roll(self, day: int) -> None:
        self.day = day
        for t in (self.acct, *self.strat_t.values()):
            t.cash_day = 0
            t.start_value = t.value
        for t in (self.acct, *self.sym_t.values(), *self.strat_t.values()):
            t.orders = t.cancels = 0

    # ------------------------------------------------------------------ cancels across restarts
    def cancel_counts(self) -> dict[str, object]:
        """The KST day's cancel counts (orders per day are rebuilt from execution's journal;
        cancel requests are not journaled, so the service saves these)."""
        return {
            "day": self.day,
            "account": self.acct.cancels,
            "strategies": {k: t.cancels for k, t in self.strat_t.items() if t.cancels},
            "symbols": {k: t.cancels for k, t in self.sym_t.items() if t.cancels},
        }

    def restore_cancels(self, saved: dict[str, Any], now_ns: int) -> bool:
        """Take saved counts back if they are today's (by the KST day); False otherwise."""
        day = kst_day(now_ns)
        if saved.get("day") != day:
            return False
        if self.day < day:
            self._roll(day)
        self.acct.cancels = max(self.acct.cancels, int(saved.get("account", 0)))
        for name, n in dict(saved.get("strategies", {})).items():
            t = self._strat(str(name))
            t.cancels = max(t.cancels, int(n))
        for name, n in dict(saved.get("symbols", {})).items():
            t = self._sym(str(name))
            t.cancels = max(t.cancels, int(n))
        return True

    # ------------------------------------------------------------------ state from streams
    def on_instrument(self, inst: Instrument) -> None:
        self.instruments[inst.symbol] = inst
        if inst.symbol not in self.last:
            self._set_mark(inst.symbol, inst.base_price)

    def on_trade(self, trade: Trade) -> None:
        self.last[trade.symbol] = trade.price
        self._set_mark(trade.symbol, trade.price)

    def on_phase(self, event: PhaseChanged) -> None:
        if event.symbol == "":
            self.market_phase = event.phase
            if event.phase is MarketPhase.CLOSED:  # a VI never outlives the session
                for sym in [s for s, p in self.symbol_phase.items() if p is MarketPhase.VI]:
                    del self.symbol_phase[sym]
        elif event.phase in _SYMBOL_OVERRIDES:
            self.symbol_phase[event.symbol] = event.phase
        else:
            self.symbol_phase.pop(event.symbol, None)

    def on_exec(self, event: ExecEvent) -> None:
        if event.seq and event.seq <= self.exec_seq:
            return
        self.exec_seq = max(self.exec_seq, event.seq)
        ts = getattr(event, "ts_ns", 0)
        if kst_day(ts) > self.day:
            self._roll(kst_day(ts))
        if isinstance(event, OrderSubmitted):
            o = self.open.get(event.client_order_id)
            if o is not None:
                o.approved_ns = 0  # confirmed: no longer expires
                return
            px = event.price or self._market_px(event.symbol)
            self._add_open(
                event.client_order_id,
                _Open(event.strategy, event.symbol, event.side, event.qty, px, px),
            )
            if kst_day(ts) == self.day:  # approved before this process started
                for t in self._scopes(event.strategy, event.symbol):
                    t.orders += 1
        elif isinstance(event, OrderFilled):
            self._fill(event)
            working = self.open.get(event.client_order_id)
            if working is not None:
                if event.leaves_qty <= 0:
                    self._remove_open(event.client_order_id)
                elif event.leaves_qty < working.leaves:
                    self._open_delta(working, event.leaves_qty - working.leaves)
        elif isinstance(event, OrderCanceled | OrderRejected):
            self._remove_open(event.client_order_id)
        elif isinstance(event, IntentDenied) and event.code != Reason.DUPLICATE_INTENT:
            # execution refused an order risk had approved (stale, not ready, halted); a
            # DUPLICATE_INTENT denial names an order that is still open
            self._remove_open(ids.client_order_id(event.intent_id))

    def _scopes(self, strategy: str, symbol: str) -> tuple[_Tally, _Tally, _Tally]:
        return self.acct, self._sym(symbol), self._strat(strategy)

    def _market_px(self, symbol: str) -> int:
        inst = self.instruments.get(symbol)
        return inst.upper_limit if inst else self.mark.get(symbol, 0)

    def expire(self, now_ns: int, mono_ns: int = 0) -> None:
        """Forget approvals execution never confirmed (lost with a crash): after this long it
        would have refused them as stale anyway. Forget duplicate-window entries that ended."""
        age_ms = max(
            [self.cfg.max_intent_age_ms]
            + [s.max_intent_age_ms or 0 for s in self.cfg.strategies.values()]
        )
        limit = now_ns - (age_ms + 5_000) * 1_000_000
        for coid in [c for c, o in self.open.items() if 0 < o.approved_ns < limit]:
            self._remove_open(coid)
        if mono_ns and self.recent:
            window = max(
                [self.cfg.duplicate_window_ms]
                + [s.duplicate_window_ms or 0 for s in self.cfg.strategies.values()]
            )
            oldest = mono_ns - window * 1_000_000
            self.recent = {k: v for k, v in self.recent.items() if v >= oldest}

    # ------------------------------------------------------------------ decisions
    def decide(
        self,
        intent: OrderIntent | CancelIntent,
        state: TradingState,
        fresh: bool,
        now_ns: int,
        mono_ns: int,
    ) -> Decision:
        day = (now_ns + _KST_OFFSET_NS) // _DAY_NS
        if day > self.day:
            self._roll(day)
        if isinstance(intent, CancelIntent):
            return self._cancel(intent, now_ns)
        refusal = self.check(intent, state, fresh, now_ns, mono_ns)
        coid = ""
        if refusal is None:
            coid = ids.client_order_id(intent.intent_id)
            if coid in self.open:
                refusal = (
                    Reason.DUPLICATE_INTENT,
                    (f"intent {intent.intent_id} is already an open order"),
                )
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
        self._commit(coid, intent, now_ns, mono_ns)
        return SubmitOrder(
            client_order_id=coid,
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

    def _commit(self, coid: str, i: OrderIntent, now_ns: int, mono_ns: int) -> None:
        """Count the approval at once, not when execution's OrderSubmitted arrives: two orders
        approved in a row (or while execution is restarting) must not share the same room."""
        sym_t, strat_t, ss_t, key = self._passed  # what check() looked up
        symbol, side, qty = i.symbol, i.side, i.qty
        buy = side is Side.BUY
        if i.order_type is OrderType.MARKET:
            inst = self.instruments[symbol]
            px = inst.upper_limit if buy else inst.lower_limit
            npx = inst.upper_limit
        else:
            px = npx = i.price
        acct = self.acct
        tallies = (acct, sym_t, strat_t, ss_t)
        o = _Open(i.strategy, symbol, side, qty, px, npx, now_ns, tallies)
        self.open[coid] = o
        by_symbol = self.open_by_symbol.get(symbol)
        if by_symbol is None:
            by_symbol = self.open_by_symbol[symbol] = {}
        by_symbol[coid] = o
        notional = qty * npx
        for t in tallies:
            t.open_count += 1
            if buy:
                t.buy_qty += qty
                t.buy_notional += notional
            else:
                t.sell_qty += qty
                t.sell_notional += notional
        acct.orders += 1
        sym_t.orders += 1
        strat_t.orders += 1
        self.recent[key] = mono_ns
        self.tokens -= 1.0

    def _cancel(self, c: CancelIntent, now_ns: int) -> CancelOrder | IntentDenied:
        o = self.open.get(c.client_order_id)
        symbol = o.symbol if o is not None else ""
        lim = self.limits_for(c.strategy, symbol)
        acct, strat = self.acct, self._strat(c.strategy)
        refusal: Refusal | None = None
        cap = self.cfg.max_cancels_per_day
        if cap is not None and acct.cancels >= cap:
            refusal = (Reason.MAX_CANCELS_PER_DAY, f"{acct.cancels} cancels today, "
                       f"max_cancels_per_day {cap}")  # fmt: skip
        elif (
            o is not None
            and lim.cancels_per_day is not None
            and (self._sym(symbol).cancels >= lim.cancels_per_day)
        ):
            refusal = (Reason.MAX_CANCELS_PER_DAY, f"{self._sym(symbol).cancels} cancels of "
                       f"{symbol} today, max {lim.cancels_per_day} for the symbol")  # fmt: skip
        elif lim.s_cancels_per_day is not None and strat.cancels >= lim.s_cancels_per_day:
            refusal = (Reason.MAX_CANCELS_PER_DAY, f"{strat.cancels} cancels by {c.strategy} "
                       f"today, max {lim.s_cancels_per_day} for the strategy")  # fmt: skip
        if refusal is not None:
            self.denied[refusal[0]] = self.denied.get(refusal[0], 0) + 1
            return IntentDenied(
                intent_id=c.intent_id,
                strategy=c.strategy,
                symbol=symbol,
                side=o.side if o is not None else Side.BUY,
                qty=0,
                price=0,
                code=refusal[0],
                reason=f"cancel of {c.client_order_id}: {refusal[1]}",
                ts_ns=now_ns,
            )
        acct.cancels += 1
        strat.cancels += 1
        if o is not None:
            self._sym(symbol).cancels += 1
        return CancelOrder(
            client_order_id=c.client_order_id, strategy=c.strategy, reason="strategy cancel"
        )

    def check(
        self, i: OrderIntent, state: TradingState, fresh: bool, now_ns: int, mono_ns: int = 0
    ) -> Refusal | None:
        """The first check the intent fails, as (code, reason), or None. Cheapest first."""
        cfg = self.cfg
        if state is TradingState.HALTED:
            return Reason.HALTED, "trading is HALTED"
        if not fresh:
            return Reason.FAILSAFE, "no word from the supervisor within the fail-safe time"
        if state is TradingState.REDUCING and not self.shrinks(i):
            pos = self.position(i.strategy, i.symbol)
            return Reason.REDUCE_ONLY, (
                f"REDUCING: {i.side.value} {i.qty} would not shrink position {pos}"
            )
        symbol = i.symbol
        lim = self.limits.get((i.strategy, symbol)) or self.limits_for(i.strategy, symbol)
        age = now_ns - i.created_ns
        if age > lim.max_intent_age_ns:
            return Reason.STALE_INTENT, (
                f"intent is {age / 1e6:.0f} ms old > max_intent_age_ms "
                f"{lim.max_intent_age_ns // 1_000_000}"
            )
        qty = i.qty
        if qty <= 0:
            return Reason.BAD_ORDER, f"qty {qty} must be positive"
        market = i.order_type is OrderType.MARKET
        price = i.price
        if not market and price <= 0:
            return Reason.BAD_ORDER, f"limit price {price} must be positive"
        if (self.symbol_phase.get(symbol) or self.market_phase) is not _CONTINUOUS:
            refusal = self._phase(i, symbol)
            if refusal is not None:
                return refusal
        inst = self.instruments.get(symbol)
        if inst is None:
            return Reason.UNKNOWN_SYMBOL, f"no reference data for {symbol}"
        if not market:
            kind = inst.kind
            if not krx.on_tick(price, kind):
                return Reason.TICK_SIZE, (
                    f"price {price} is not a multiple of the tick {krx.tick_size(price, kind)}"
                )
            if not inst.lower_limit <= price <= inst.upper_limit:
                return Reason.PRICE_LIMIT, (
                    f"price {price} outside the daily limits "
                    f"[{inst.lower_limit}, {inst.upper_limit}]"
                )
            collar = lim.price_collar_bp
            last = self.last.get(symbol)
            if (
                collar is not None
                and last is not None
                and abs(price - last) * 10_000 > collar * last
            ):
                return Reason.PRICE_COLLAR, (
                    f"price {price} is {abs(price - last) * 10_000 / last:.0f} bp from the "
                    f"last trade {last} > price_collar_bp {collar}"
                )
        if qty > lim.max_order_qty:
            return Reason.MAX_ORDER_QTY, f"qty {qty} > max_order_qty {lim.max_order_qty}"
        notional = qty * (inst.upper_limit if market else price)
        if notional > lim.max_order_notional:
            return Reason.MAX_ORDER_NOTIONAL, (
                f"notional {notional:,} > max_order_notional {lim.max_order_notional:,}"
            )
        acct = self.acct
        sym_t = self.sym_t.get(symbol) or self._sym(symbol)
        strat_t = self.strat_t.get(i.strategy) or self._strat(i.strategy)
        refusal = self._counts(i, lim, acct, sym_t, strat_t)
        if refusal is not None:
            return refusal
        # throttle: a token bucket for the account, spent on approval
        tokens = self.tokens
        if mono_ns > self.tokens_mono:
            tokens = min(self.burst, tokens + (mono_ns - self.tokens_mono) * self.rate / 1e9)
            self.tokens, self.tokens_mono = tokens, mono_ns
        if tokens < 1.0:
            return Reason.THROTTLED, (
                f"submit rate above {self.rate:g}/s (burst {self.burst}) for the account"
            )
        side = i.side
        window = lim.duplicate_window_ns
        key = (i.strategy, symbol, side, price, qty)
        if window:
            seen = self.recent.get(key)
            if seen is not None and mono_ns - seen < window:
                return Reason.DUPLICATE_ORDER, (
                    f"same {side.value} {qty} @ {price} by {i.strategy} "
                    f"{(mono_ns - seen) / 1e6:.1f} ms ago < duplicate_window_ms "
                    f"{window // 1_000_000}"
                )
        buy = side is Side.BUY
        if cfg.self_cross and (sym_t.sell_qty if buy else sym_t.buy_qty):
            refusal = self._self_cross(i, market, inst)
            if refusal is not None:
                return refusal
        if not buy:
            held, committed = sym_t.pos, sym_t.sell_qty
            if qty > held - committed:
                return Reason.INSUFFICIENT_HOLDINGS, (
                    f"sell {qty} > held {held} - committed to open sells {committed}"
                )
        ss_t = self.ss_t.get((i.strategy, symbol)) or self._ss(i.strategy, symbol)
        mark = self.mark.get(symbol, price)
        refusal = self._position(i, lim, sym_t, ss_t, notional, mark)
        if refusal is not None:
            return refusal
        if buy:
            need = acct.buy_notional + notional
            fees = need * self._fee_num // self._fee_den
            cash = self.acct_cfg.initial_cash + acct.cash
            if need + fees > cash:
                return Reason.INSUFFICIENT_CASH, (
                    f"buy {notional:,} + open buys {acct.buy_notional:,} + commission {fees:,} "
                    f"> cash {cash:,}"
                )
        sign = 1 if buy else -1
        shrinks_acct = 0 < qty <= -sign * sym_t.pos
        shrinks_strat = 0 < qty <= -sign * ss_t.pos
        if not shrinks_acct:
            refusal = _exposure(acct, "account", notional, sign,
                                cfg.max_gross_exposure, cfg.max_net_exposure)  # fmt: skip
            if refusal is not None:
                return refusal
            if cfg.max_daily_loss is not None and -acct.day_pnl() > cfg.max_daily_loss:
                return Reason.DAILY_LOSS, (
                    f"account lost {-acct.day_pnl():,} today > max_daily_loss "
                    f"{cfg.max_daily_loss:,}: only orders that shrink a position"
                )
        if not shrinks_strat:
            if lim.s_gross is not None or lim.s_net is not None:
                refusal = _exposure(strat_t, i.strategy, notional, sign, lim.s_gross, lim.s_net)
                if refusal is not None:
                    return refusal
            if lim.s_daily_loss is not None and -strat_t.day_pnl() > lim.s_daily_loss:
                return Reason.DAILY_LOSS, (
                    f"{i.strategy} lost {-strat_t.day_pnl():,} today > max_daily_loss "
                    f"{lim.s_daily_loss:,}: only orders that shrink a position"
                )
        self._passed = (sym_t, strat_t, ss_t, key)
        return None

    def _phase(self, i: OrderIntent, symbol: str) -> Refusal | None:
        phase = self.symbol_phase.get(symbol) or self.market_phase
        if phase is _CONTINUOUS:
            return None
        if phase is None:
            if self.cfg.require_phase:
                return Reason.SESSION_UNKNOWN, "no market phase known yet (risk.require_phase)"
            return None
        if phase is MarketPhase.CLOSED:
            return Reason.SESSION_CLOSED, "the market is CLOSED"
        if phase is MarketPhase.HALTED:
            where = symbol if symbol in self.symbol_phase else "the market"
            return Reason.MARKET_HALTED, f"trading in {where} is halted by the exchange"
        if phase in _AUCTIONS and (
            i.order_type is not OrderType.LIMIT or i.tif is not TimeInForce.DAY
        ):
            code = Reason.VI_IN_EFFECT if phase is MarketPhase.VI else Reason.ORDER_TYPE
            return code, (
                f"{i.order_type.value} {i.tif.value} not accepted in {phase.value} "
                "(limit DAY orders only)"
            )
        return None

    def _counts(
        self, i: OrderIntent, lim: _Limits, acct: _Tally, sym_t: _Tally, strat_t: _Tally
    ) -> Refusal | None:
        cfg = self.cfg
        cap = cfg.max_orders_per_day
        if cap is not None and acct.orders >= cap:
            return Reason.MAX_ORDERS_PER_DAY, (
                f"{acct.orders} orders today, max_orders_per_day {cap}"
            )
        cap = lim.orders_per_day
        if cap is not None and sym_t.orders >= cap:
            return Reason.MAX_ORDERS_PER_DAY, (
                f"{sym_t.orders} orders in {i.symbol} today, max {cap} for the symbol"
            )
        cap = lim.s_orders_per_day
        if cap is not None and strat_t.orders >= cap:
            return Reason.MAX_ORDERS_PER_DAY, (
                f"{strat_t.orders} orders by {i.strategy} today, max {cap} for the strategy"
            )
        cap = cfg.max_open_orders
        if cap is not None and acct.open_count >= cap:
            return Reason.MAX_OPEN_ORDERS, f"{acct.open_count} open orders, max_open_orders {cap}"
        cap = lim.open_orders
        if cap is not None and sym_t.open_count >= cap:
            return Reason.MAX_OPEN_ORDERS, (
                f"{sym_t.open_count} open orders in {i.symbol}, max {cap} for the symbol"
            )
        cap = lim.s_open_orders
        if cap is not None and strat_t.open_count >= cap:
            return Reason.MAX_OPEN_ORDERS, (
                f"{strat_t.open_count} open orders by {i.strategy}, max {cap} for the strategy"
            )
        return None

    def _self_cross(self, i: OrderIntent, market: bool, inst: Instrument) -> Refusal | None:
        buy = i.side is Side.BUY
        opposite = Side.SELL if buy else Side.BUY
        prices = [o.price for o in self.open_by_symbol[i.symbol].values() if o.side is opposite]
        if buy:
            best = min(prices)
            px = inst.upper_limit if market else i.price
            if px >= best:
                return Reason.SELF_CROSS, f"buy at {px} >= own open sell at {best}"
        else:
            best = max(prices)
            px = inst.lower_limit if market else i.price
            if px <= best:
                return Reason.SELF_CROSS, f"sell at {px} <= own open buy at {best}"
        return None

    def _position(
        self, i: OrderIntent, lim: _Limits, sym_t: _Tally, ss_t: _Tally, notional: int, mark: int
    ) -> Refusal | None:
        """Worst case after the order: every open order on its side fills, and it fills."""
        refusal = None
        if lim.position_qty is not None or lim.position_notional is not None:
            refusal = _position(i, sym_t, lim.position_qty, lim.position_notional, "account",
                                notional, mark)  # fmt: skip
        if refusal is None and (
            lim.s_position_qty is not None or lim.s_position_notional is not None
        ):
            refusal = _position(i, ss_t, lim.s_position_qty, lim.s_position_notional,
                                i.strategy, notional, mark)  # fmt: skip
        return refusal

    def shrinks(self, i: OrderIntent) -> bool:
        pos = self.position(i.strategy, i.symbol)
        if i.side is Side.SELL:
            return 0 < i.qty <= pos
        return 0 < i.qty <= -pos


def _position(
    i: OrderIntent,
    t: _Tally,
    cap_qty: int | None,
    cap_notional: int | None,
    who: str,
    notional: int,
    mark: int,
) -> Refusal | None:
    """One scope's position after the order, against its limits."""
    if i.side is Side.BUY:
        qty_after = t.pos + t.buy_qty + i.qty
        notional_after = t.pos * mark + t.buy_notional + notional
    else:
        qty_after = -(t.pos - t.sell_qty - i.qty)
        notional_after = -(t.pos * mark - t.sell_notional - notional)
    if cap_qty is not None and qty_after > cap_qty:
        return Reason.MAX_POSITION, (
            f"{who} position in {i.symbol} with open {i.side.value} orders and this one "
            f"{qty_after} shares > max_position_qty {cap_qty}"
        )
    if cap_notional is not None and notional_after > cap_notional:
        return Reason.MAX_POSITION, (
            f"{who} position in {i.symbol} with open {i.side.value} orders and this one "
            f"{notional_after:,} KRW > max_position_notional {cap_notional:,}"
        )
    return None


def _pick(a: int | None, b: int | None) -> int | None:
    return a if a is not None else b


def _exposure(
    t: _Tally, who: str, notional: int, sign: int, max_gross: int | None, max_net: int | None
) -> Refusal | None:
    """Gross: positions at the mark plus every open order; net: long minus short, open buys
    counted long and open sells short. Checked for orders that do not shrink a position."""
    if max_gross is not None:
        gross = t.gross + t.buy_notional + t.sell_notional + notional
        if gross > max_gross:
            return Reason.MAX_GROSS_EXPOSURE, (
                f"{who} gross exposure with this order {gross:,} > max_gross_exposure {max_gross:,}"
            )
    if max_net is not None:
        now = t.value + t.buy_notional - t.sell_notional
        after = now + sign * notional
        if abs(after) > max_net and abs(after) > abs(now):
            return Reason.MAX_NET_EXPOSURE, (
                f"{who} net exposure with this order {after:,} > max_net_exposure {max_net:,}"
            )
    return None
