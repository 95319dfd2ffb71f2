"""Risk engine basics: approvals, state, stale intents, reference data, holdings, bookkeeping."""

from __future__ import annotations

import msgspec
import pytest

from protocol.codes import Reason
from protocol.enums import OrderType, Side, TradingState
from protocol.messages import (
    CancelOrder,
    IntentDenied,
    SubmitOrder,
)
from services.risk.engine import RiskEngine
from services.runtime import ids
from services.runtime.settings import RiskSettings
from tests.unit.risk.kit import (
    NOW,
    SYM,
    approve,
    cancel,
    code,
    decide,
    engine,
    fill,
    intent,
    submitted,
)


def test_submit_when_all_checks_pass_then_submit_order_with_derived_id() -> None:
    d = decide(engine(), intent(intent_id="pulse:1:5:0"), mono=42)
    assert isinstance(d, SubmitOrder)
    assert d.client_order_id == ids.client_order_id("pulse:1:5:0")
    assert d.trace.decided == 42 and d.trace.observed == 1


def test_submit_when_halted_then_denied() -> None:
    assert code(decide(engine(), intent(), state=TradingState.HALTED)) == Reason.HALTED


def test_submit_when_control_stale_then_failsafe() -> None:
    assert code(decide(engine(), intent(), fresh=False)) == Reason.FAILSAFE


def test_cancel_when_halted_then_passes() -> None:
    d = decide(engine(), cancel("C9"), state=TradingState.HALTED, fresh=False)
    assert isinstance(d, CancelOrder) and d.client_order_id == "C9"


def test_reducing_when_sell_shrinks_position_then_approved_else_reduce_only() -> None:
    e = engine()
    e.on_exec(fill(10))
    reducing = TradingState.REDUCING
    assert isinstance(decide(e, intent(qty=10, side=Side.SELL), state=reducing), SubmitOrder)
    assert code(decide(e, intent(qty=11, side=Side.SELL), state=reducing)) == Reason.REDUCE_ONLY
    assert code(decide(e, intent(qty=1), state=reducing)) == Reason.REDUCE_ONLY


def test_stale_intent_just_inside_and_outside() -> None:
    e = engine(max_intent_age_ms=100)
    approve(e, intent(created_ns=NOW - 100_000_000))
    assert code(decide(e, intent(created_ns=NOW - 100_000_001))) == Reason.STALE_INTENT


def test_stale_intent_per_strategy_override() -> None:
    e = engine(max_intent_age_ms=100, strategies={"slow": {"max_intent_age_ms": 500}})
    approve(e, intent(created_ns=NOW - 500_000_000, strategy="slow"))
    assert code(decide(e, intent(created_ns=NOW - 500_000_001, strategy="slow"))) == (
        Reason.STALE_INTENT
    )
    assert code(decide(e, intent(created_ns=NOW - 100_000_001))) == Reason.STALE_INTENT


@pytest.mark.parametrize("qty,price", [(0, 70_000), (-1, 70_000), (10, 0), (10, -100)])
def test_bad_qty_or_price_then_bad_order(qty: int, price: int) -> None:
    assert code(decide(engine(), intent(qty=qty, price=price))) == Reason.BAD_ORDER


def test_unknown_symbol_then_denied() -> None:
    assert code(decide(engine(), intent(symbol="999999"))) == Reason.UNKNOWN_SYMBOL


def test_price_off_tick_then_tick_size() -> None:
    d = decide(engine(), intent(price=70_050))
    assert code(d) == Reason.TICK_SIZE
    assert isinstance(d, IntentDenied) and "70050" in d.reason and "100" in d.reason


@pytest.mark.parametrize(
    "price,ok", [(91_000, True), (91_100, False), (49_000, True), (48_950, False)]
)
def test_price_limits_inside_and_outside(price: int, ok: bool) -> None:
    d = decide(engine(), intent(qty=1, price=price))
    assert isinstance(d, SubmitOrder) if ok else code(d) == Reason.PRICE_LIMIT


def test_max_order_qty_inside_and_outside() -> None:
    e = engine(max_order_qty=100)
    approve(e, intent(qty=100))
    d = decide(e, intent(qty=101))
    assert code(d) == Reason.MAX_ORDER_QTY
    assert isinstance(d, IntentDenied) and d.reason == "qty 101 > max_order_qty 100"


def test_max_notional_inside_and_outside() -> None:
    e = engine(max_order_notional=700_000)
    approve(e, intent(qty=10))
    assert code(decide(e, intent(qty=11))) == Reason.MAX_ORDER_NOTIONAL


def test_market_order_notional_priced_at_upper_limit() -> None:
    e = engine(max_order_notional=910_000)
    approve(e, intent(qty=10, price=0, order_type=OrderType.MARKET))
    d = decide(e, intent(qty=11, price=0, order_type=OrderType.MARKET))
    assert code(d) == Reason.MAX_ORDER_NOTIONAL


def test_order_limits_symbol_raises_strategy_lowers_both_set_smaller_wins() -> None:
    e = engine(
        max_order_qty=100,
        strategies={"small": {"max_order_qty": 5}},
        symbols={SYM: {"max_order_qty": 1_000}},
    )
    approve(e, intent(qty=1_000))  # the symbol's own limit replaces the global 100
    assert code(decide(e, intent(qty=1_001))) == Reason.MAX_ORDER_QTY
    approve(e, intent(qty=5, strategy="small"))  # strategy 5 and symbol 1,000: 5 applies
    assert code(decide(e, intent(qty=6, strategy="small"))) == Reason.MAX_ORDER_QTY


def test_sell_beyond_holdings_minus_open_sells_then_insufficient() -> None:
    e = engine()
    e.on_exec(fill(10))
    e.on_exec(submitted("S1", 4, Side.SELL))
    approve(e, intent(qty=6, side=Side.SELL))
    d = decide(e, intent(qty=1, side=Side.SELL))
    assert code(d) == Reason.INSUFFICIENT_HOLDINGS
    assert isinstance(d, IntentDenied) and d.reason == (
        "sell 1 > held 10 - committed to open sells 10"
    )


def test_sell_with_no_holdings_then_no_naked_short() -> None:
    assert code(decide(engine(), intent(qty=1, side=Side.SELL))) == Reason.INSUFFICIENT_HOLDINGS


def test_exec_event_replayed_then_applied_once() -> None:
    e = engine()
    f = fill(10)
    e.on_exec(f)
    e.on_exec(f)
    assert e.holding(SYM) == 10 and e.position("pulse", SYM) == 10


def test_denials_counted_by_code() -> None:
    e = engine()
    decide(e, intent(price=70_050))
    decide(e, intent(), state=TradingState.HALTED)
    decide(e, intent())
    assert e.denied == {Reason.TICK_SIZE: 1, Reason.HALTED: 1} and e.approved == 1


def test_same_intent_twice_then_duplicate_intent() -> None:
    e = engine()
    approve(e, intent(intent_id="pulse:1:9:0"))
    assert code(decide(e, intent(intent_id="pulse:1:9:0", qty=3))) == Reason.DUPLICATE_INTENT


def test_two_sells_approved_before_execution_confirms_then_second_denied() -> None:
    e = engine()
    e.on_exec(fill(1))  # holds 1 share
    approve(e, intent(qty=1, side=Side.SELL))
    # execution has not published OrderSubmitted yet (or is restarting): the share is committed
    assert code(decide(e, intent(qty=1, side=Side.SELL))) == Reason.INSUFFICIENT_HOLDINGS


def test_approval_refused_by_execution_then_shares_released() -> None:
    e = engine()
    e.on_exec(fill(1))
    approve(e, intent(qty=1, side=Side.SELL, intent_id="a"))
    e.on_exec(
        IntentDenied(
            seq=10**6, intent_id="a", strategy="pulse", symbol=SYM, side=Side.SELL, qty=1,
            price=70_000, code=Reason.NOT_READY, reason="reconciling", ts_ns=NOW,
        )
    )  # fmt: skip
    approve(e, intent(qty=1, side=Side.SELL))


def test_approval_never_confirmed_then_expires() -> None:
    e = engine()
    e.on_exec(fill(1))
    approve(e, intent(qty=1, side=Side.SELL))
    later = NOW + 60_000_000_000
    e.expire(later)
    approve(e, intent(qty=1, side=Side.SELL, created_ns=later), now=later)


def test_approval_confirmed_by_execution_then_never_expires() -> None:
    e = engine()
    e.on_exec(fill(1))
    d = approve(e, intent(qty=1, side=Side.SELL))
    e.on_exec(submitted(d.client_order_id, 1, Side.SELL))
    later = NOW + 60_000_000_000
    e.expire(later)
    d2 = decide(e, intent(qty=1, side=Side.SELL, created_ns=later), now=later)
    assert code(d2) == Reason.INSUFFICIENT_HOLDINGS


def test_partial_fill_then_open_shrinks_to_leaves() -> None:
    e = engine()
    d = approve(e, intent(qty=10))
    e.on_exec(fill(4, coid=d.client_order_id, leaves=6))
    assert e.holding(SYM) == 4 and e.acct.buy_qty == 6 and e.acct.open_count == 1
    e.on_exec(fill(6, coid=d.client_order_id, leaves=0))
    assert e.acct.buy_qty == 0 and e.acct.open_count == 0 and not e.open


def test_default_settings_engine_denies_until_a_phase_is_known() -> None:
    e = RiskEngine(RiskSettings())
    assert code(e.decide(intent(), TradingState.ACTIVE, True, NOW, 1)) == Reason.SESSION_UNKNOWN


def test_duplicate_intent_denial_echoed_by_execution_then_order_stays_open() -> None:
    e = engine()
    d = approve(e, intent(intent_id="pulse:1:77:0", qty=4))
    denied = decide(e, intent(intent_id="pulse:1:77:0", qty=4))
    assert isinstance(denied, IntentDenied) and denied.code == Reason.DUPLICATE_INTENT
    e.on_exec(msgspec.structs.replace(denied, seq=10**7))
    assert d.client_order_id in e.open and e.acct.buy_qty == 4


def test_strategy_with_a_longer_intent_age_then_its_approvals_expire_later() -> None:
    e = engine(strategies={"slow": {"max_intent_age_ms": 30_000}})
    e.on_exec(fill(1))
    approve(e, intent(qty=1, side=Side.SELL, strategy="slow"))
    e.expire(NOW + 20_000_000_000)
    assert e.committed_sells(SYM) == 1
    e.expire(NOW + 36_000_000_000)
    assert e.committed_sells(SYM) == 0
