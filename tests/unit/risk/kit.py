"""Builders for the risk engine's tests: one funded engine with 005930 in CONTINUOUS trading.

005930: base 70,000, daily limits [49,000, 91,000], tick 100 between 50,000 and 200,000.
000660: base 180,000, limits [126,000, 234,000], tick 100 below 200,000, 500 above.
"""

from __future__ import annotations

import itertools
from typing import Any

from protocol.enums import MarketPhase, Side, TradingState
from protocol.messages import (
    CancelIntent,
    Instrument,
    IntentDenied,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    PhaseChanged,
    SubmitOrder,
    Trace,
    Trade,
)
from services.risk.engine import Decision, RiskEngine
from services.runtime.settings import AccountSettings, BrokerSettings, RiskSettings

NOW = 1_780_000_000_000_000_000  # 2026-05-29 05:26 in Korea
SYM = "005930"
SYM2 = "000660"
ACTIVE = TradingState.ACTIVE
_mono = itertools.count(1_000_000_000_000, 1_000_000_000)  # one second apart by default


def inst(symbol: str = SYM) -> Instrument:
    if symbol == SYM:
        return Instrument(
            stream=1, seq=1, symbol=SYM, base_price=70_000, upper_limit=91_000, lower_limit=49_000
        )
    return Instrument(
        stream=1, seq=1, symbol=symbol, base_price=180_000, upper_limit=234_000,
        lower_limit=126_000,
    )  # fmt: skip


def engine(
    phase: MarketPhase | None = MarketPhase.CONTINUOUS,
    cash: int = 10**12,
    broker: BrokerSettings | None = None,
    **cfg: Any,
) -> RiskEngine:
    """An engine with both symbols' reference data and the market in `phase`. Limits not named
    in `cfg` are off (None) unless they have no off value, so each test meets only its check."""
    base: dict[str, Any] = {
        "price_collar_bp": None,
        "max_position_notional": None,
        "max_gross_exposure": None,
        "max_net_exposure": None,
        "max_daily_loss": None,
        "max_order_notional": 10**12,
        "submit_rate_per_s": 1e9,
        "submit_burst": 10**9,
    }
    e = RiskEngine(
        RiskSettings.model_validate({**base, **cfg}),
        AccountSettings(initial_cash=cash),
        broker,
    )
    e.on_instrument(inst(SYM))
    e.on_instrument(inst(SYM2))
    if phase is not None:
        e.on_phase(phase_changed(phase))
    return e


def phase_changed(phase: MarketPhase, symbol: str = "") -> PhaseChanged:
    return PhaseChanged(stream=1, seq=2, symbol=symbol, exch_ns=NOW, phase=phase)


def trade(price: int, symbol: str = SYM) -> Trade:
    return Trade(stream=1, seq=3, symbol=symbol, exch_ns=NOW, price=price, qty=1)


_ids = itertools.count()


def intent(
    qty: int = 10,
    price: int = 70_000,
    side: Side = Side.BUY,
    created_ns: int = NOW,
    intent_id: str | None = None,
    strategy: str = "pulse",
    symbol: str = SYM,
    **kw: Any,
) -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id or f"{strategy}:1:{next(_ids)}:0",
        strategy=strategy,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        created_ns=created_ns,
        trace=Trace(observed=1),
        **kw,
    )


def cancel(coid: str, strategy: str = "pulse") -> CancelIntent:
    return CancelIntent(
        intent_id=f"{strategy}:c:{next(_ids)}", strategy=strategy, client_order_id=coid,
        created_ns=NOW,
    )  # fmt: skip


def decide(
    e: RiskEngine,
    i: OrderIntent | CancelIntent,
    state: TradingState = ACTIVE,
    fresh: bool = True,
    now: int = NOW,
    mono: int | None = None,
) -> Decision:
    return e.decide(i, state, fresh, now, next(_mono) if mono is None else mono)


def approve(e: RiskEngine, i: OrderIntent, **kw: Any) -> SubmitOrder:
    d = decide(e, i, **kw)
    assert isinstance(d, SubmitOrder), d
    return d


def code(d: object) -> str:
    assert isinstance(d, IntentDenied), d
    return d.code


_seq = itertools.count(1)


def fill(
    qty: int,
    side: Side = Side.BUY,
    coid: str = "C1",
    leaves: int = 0,
    price: int = 70_000,
    strategy: str = "pulse",
    symbol: str = SYM,
    ts_ns: int = NOW,
) -> OrderFilled:
    seq = next(_seq)
    return OrderFilled(
        seq=seq, fill_id=f"f{seq}", client_order_id=coid, broker_order_no="1",
        strategy=strategy, symbol=symbol, side=side, qty=qty, price=price, leaves_qty=leaves,
        exch_ns=ts_ns, ts_ns=ts_ns,
    )  # fmt: skip


def submitted(
    coid: str, qty: int, side: Side = Side.SELL, price: int = 70_000, strategy: str = "pulse",
    symbol: str = SYM,
) -> OrderSubmitted:  # fmt: skip
    return OrderSubmitted(
        seq=next(_seq), client_order_id=coid, intent_id="i", strategy=strategy, symbol=symbol,
        side=side, qty=qty, price=price, ts_ns=NOW,
    )  # fmt: skip


def canceled(coid: str, side: Side = Side.BUY, strategy: str = "pulse") -> OrderCanceled:
    return OrderCanceled(
        seq=next(_seq), client_order_id=coid, broker_order_no="1", strategy=strategy,
        symbol=SYM, side=side, canceled_qty=0, reason="test", ts_ns=NOW,
    )  # fmt: skip


def holding(e: RiskEngine, qty: int, price: int = 70_000, symbol: str = SYM) -> None:
    """Give the account `qty` shares bought at `price` (a fill of an order it never saw)."""
    e.on_exec(fill(qty, price=price, coid=f"H{next(_seq)}", symbol=symbol))
