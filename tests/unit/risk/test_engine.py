"""Risk engine: one test pair per check (just inside passes, just outside is refused)."""

from __future__ import annotations

import pytest

from protocol.codes import Reason
from protocol.enums import OrderType, Side, TradingState
from protocol.messages import (
    CancelIntent,
    CancelOrder,
    Instrument,
    IntentDenied,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    SubmitOrder,
    Trace,
)
from services.risk.engine import RiskEngine
from services.runtime import ids
from services.runtime.settings import RiskSettings

NOW = 1_000_000_000_000
ACTIVE = TradingState.ACTIVE


def engine(**cfg: int) -> RiskEngine:
    e = RiskEngine(RiskSettings(**cfg))
    e.on_instrument(
        Instrument(
            stream=1,
            seq=1,
            symbol="005930",
            base_price=70_000,
            upper_limit=91_000,
            lower_limit=49_000,
        )
    )
    return e


def intent(
    qty: int = 10,
    price: int = 70_000,
    side: Side = Side.BUY,
    created_ns: int = NOW,
    intent_id: str = "pulse:1:5:0",
    **kw: object,
) -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id,
        strategy="pulse",
        symbol="005930",
        side=side,
        qty=qty,
        price=price,
        created_ns=created_ns,
        trace=Trace(observed=1),
        **kw,
    )  # type: ignore[arg-type]


def fill(
    seq: int, qty: int, side: Side = Side.BUY, coid: str = "C1", leaves: int = 0
) -> OrderFilled:
    return OrderFilled(
        seq=seq,
        fill_id=f"f{seq}",
        client_order_id=coid,
        broker_order_no="1",
        strategy="pulse",
        symbol="005930",
        side=side,
        qty=qty,
        price=70_000,
        leaves_qty=leaves,
        exch_ns=0,
        ts_ns=0,
    )


def code(d: object) -> str:
    assert isinstance(d, IntentDenied), d
    return d.code


def test_submit_when_all_checks_pass_then_submit_order_with_derived_id() -> None:
    d = engine().decide(intent(), ACTIVE, True, NOW, 42)
    assert isinstance(d, SubmitOrder)
    assert d.client_order_id == ids.client_order_id("pulse:1:5:0")
    assert d.trace.decided == 42 and d.trace.observed == 1


def test_submit_when_halted_then_denied() -> None:
    assert code(engine().decide(intent(), TradingState.HALTED, True, NOW, 0)) == Reason.HALTED


def test_submit_when_control_stale_then_failsafe() -> None:
    assert code(engine().decide(intent(), ACTIVE, False, NOW, 0)) == Reason.FAILSAFE


def test_cancel_when_halted_then_passes() -> None:
    c = CancelIntent(intent_id="x", strategy="pulse", client_order_id="C9", created_ns=NOW)
    d = engine().decide(c, TradingState.HALTED, False, NOW, 0)
    assert isinstance(d, CancelOrder) and d.client_order_id == "C9"


def test_reducing_when_sell_shrinks_position_then_approved_else_reduce_only() -> None:
    e = engine()
    e.on_exec(fill(1, 10))
    assert isinstance(
        e.decide(intent(qty=10, side=Side.SELL), TradingState.REDUCING, True, NOW, 0), SubmitOrder
    )
    assert (
        code(e.decide(intent(qty=11, side=Side.SELL), TradingState.REDUCING, True, NOW, 0))
        == Reason.REDUCE_ONLY
    )
    assert code(e.decide(intent(qty=1), TradingState.REDUCING, True, NOW, 0)) == Reason.REDUCE_ONLY


def test_stale_intent_just_inside_and_outside() -> None:
    e = engine(max_intent_age_ms=100)
    assert isinstance(
        e.decide(intent(created_ns=NOW - 100_000_000), ACTIVE, True, NOW, 0), SubmitOrder
    )
    assert (
        code(e.decide(intent(created_ns=NOW - 100_000_001), ACTIVE, True, NOW, 0))
        == Reason.STALE_INTENT
    )


@pytest.mark.parametrize("qty,price", [(0, 70_000), (-1, 70_000), (10, 0), (10, -100)])
def test_bad_qty_or_price_then_bad_order(qty: int, price: int) -> None:
    assert (
        code(engine().decide(intent(qty=qty, price=price), ACTIVE, True, NOW, 0))
        == Reason.BAD_ORDER
    )


def test_unknown_symbol_then_denied() -> None:
    e = RiskEngine(RiskSettings())
    assert code(e.decide(intent(), ACTIVE, True, NOW, 0)) == Reason.UNKNOWN_SYMBOL


def test_price_off_tick_then_tick_size() -> None:
    d = engine().decide(intent(price=70_050), ACTIVE, True, NOW, 0)
    assert code(d) == Reason.TICK_SIZE
    assert isinstance(d, IntentDenied) and "70050" in d.reason


@pytest.mark.parametrize(
    "price,ok", [(91_000, True), (91_100, False), (49_000, True), (48_950, False)]
)
def test_price_limits_inside_and_outside(price: int, ok: bool) -> None:
    d = engine().decide(intent(qty=1, price=price), ACTIVE, True, NOW, 0)
    assert isinstance(d, SubmitOrder) if ok else code(d) == Reason.PRICE_LIMIT


def test_max_order_qty_inside_and_outside() -> None:
    e = engine(max_order_qty=100, max_order_notional=10**12)
    assert isinstance(e.decide(intent(qty=100), ACTIVE, True, NOW, 0), SubmitOrder)
    d = e.decide(intent(qty=101), ACTIVE, True, NOW, 0)
    assert code(d) == Reason.MAX_ORDER_QTY
    assert isinstance(d, IntentDenied) and d.reason == "qty 101 > max_order_qty 100"


def test_max_notional_inside_and_outside() -> None:
    e = engine(max_order_notional=700_000)
    assert isinstance(e.decide(intent(qty=10), ACTIVE, True, NOW, 0), SubmitOrder)
    assert code(e.decide(intent(qty=11), ACTIVE, True, NOW, 0)) == Reason.MAX_ORDER_NOTIONAL


def test_market_order_notional_priced_at_upper_limit() -> None:
    e = engine(max_order_notional=910_000)
    ok = e.decide(intent(qty=10, price=0, order_type=OrderType.MARKET), ACTIVE, True, NOW, 0)
    assert isinstance(ok, SubmitOrder)
    d = e.decide(intent(qty=11, price=0, order_type=OrderType.MARKET), ACTIVE, True, NOW, 0)
    assert code(d) == Reason.MAX_ORDER_NOTIONAL


def test_sell_beyond_holdings_minus_open_sells_then_insufficient() -> None:
    e = engine()
    e.on_exec(fill(1, 10))
    e.on_exec(
        OrderSubmitted(
            seq=2,
            client_order_id="S1",
            intent_id="i",
            strategy="pulse",
            symbol="005930",
            side=Side.SELL,
            qty=4,
            price=70_000,
            ts_ns=0,
        )
    )
    assert isinstance(e.decide(intent(qty=6, side=Side.SELL), ACTIVE, True, NOW, 0), SubmitOrder)
    d = e.decide(intent(qty=7, side=Side.SELL), ACTIVE, True, NOW, 0)
    assert code(d) == Reason.INSUFFICIENT_HOLDINGS


def test_sell_with_no_holdings_then_no_naked_short() -> None:
    d = engine().decide(intent(qty=1, side=Side.SELL), ACTIVE, True, NOW, 0)
    assert code(d) == Reason.INSUFFICIENT_HOLDINGS


def test_exec_event_replayed_then_applied_once() -> None:
    e = engine()
    e.on_exec(fill(1, 10))
    e.on_exec(fill(1, 10))
    assert e.account["005930"] == 10


def test_denials_counted_by_code() -> None:
    e = engine()
    e.decide(intent(price=70_050), ACTIVE, True, NOW, 0)
    e.decide(intent(), TradingState.HALTED, True, NOW, 0)
    e.decide(intent(), ACTIVE, True, NOW, 0)
    assert e.denied == {Reason.TICK_SIZE: 1, Reason.HALTED: 1} and e.approved == 1


def test_two_sells_approved_before_execution_confirms_then_second_denied() -> None:
    e = engine()
    e.on_exec(fill(1, 1))  # holds 1 share
    first = e.decide(intent(qty=1, side=Side.SELL, intent_id="a"), ACTIVE, True, NOW, 0)
    assert isinstance(first, SubmitOrder)
    # execution has not published OrderSubmitted yet (or is restarting): the share is committed
    second = e.decide(intent(qty=1, side=Side.SELL, intent_id="b"), ACTIVE, True, NOW, 0)
    assert code(second) == Reason.INSUFFICIENT_HOLDINGS


def test_approval_refused_by_execution_then_shares_released() -> None:
    e = engine()
    e.on_exec(fill(1, 1))
    e.decide(intent(qty=1, side=Side.SELL, intent_id="a"), ACTIVE, True, NOW, 0)
    e.on_exec(
        IntentDenied(
            seq=2,
            intent_id="a",
            strategy="pulse",
            symbol="005930",
            side=Side.SELL,
            qty=1,
            price=70_000,
            code=Reason.NOT_READY,
            reason="reconciling",
            ts_ns=NOW,
        )
    )
    again = e.decide(intent(qty=1, side=Side.SELL, intent_id="c"), ACTIVE, True, NOW, 0)
    assert isinstance(again, SubmitOrder)


def test_approval_never_confirmed_then_expires() -> None:
    e = engine()
    e.on_exec(fill(1, 1))
    e.decide(intent(qty=1, side=Side.SELL, intent_id="a"), ACTIVE, True, NOW, 0)
    e.expire(NOW + 60_000_000_000)
    later = NOW + 60_000_000_000
    again = e.decide(
        intent(qty=1, side=Side.SELL, intent_id="c", created_ns=later), ACTIVE, True, later, 0
    )
    assert isinstance(again, SubmitOrder)
