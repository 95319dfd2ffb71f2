"""One pair per check added for issue 5: just inside passes, just outside is refused with its
code and a reason carrying the figures."""

from __future__ import annotations

import datetime as dt

import pytest

from protocol.codes import Reason
from protocol.enums import MarketPhase, OrderType, Side, TimeInForce
from protocol.messages import CancelOrder, IntentDenied, SubmitOrder
from services.risk.engine import RiskEngine, kst_day, submit_rate
from services.runtime import krx
from services.runtime.settings import BrokerSettings, RiskSettings
from tests.unit.risk.kit import (
    NOW,
    SYM,
    SYM2,
    approve,
    cancel,
    canceled,
    code,
    decide,
    engine,
    fill,
    holding,
    intent,
    phase_changed,
    trade,
)

DAY_NS = 86_400 * 10**9


def reason(d: object) -> str:
    assert isinstance(d, IntentDenied), d
    return d.reason


# ---------------------------------------------------------------------------- phase, order type
def test_no_phase_seen_then_session_unknown_unless_not_required() -> None:
    d = decide(engine(phase=None), intent())
    assert code(d) == Reason.SESSION_UNKNOWN and "no market phase" in reason(d)
    approve(engine(phase=None, require_phase=False), intent())


@pytest.mark.parametrize(
    "phase,code_",
    [(MarketPhase.CLOSED, Reason.SESSION_CLOSED), (MarketPhase.HALTED, Reason.MARKET_HALTED)],
)
def test_closed_or_halted_market_then_no_order_of_any_type(phase: MarketPhase, code_: str) -> None:
    e = engine(phase=phase)
    assert code(decide(e, intent())) == code_
    assert code(decide(e, intent(price=0, order_type=OrderType.MARKET))) == code_


@pytest.mark.parametrize("phase", [MarketPhase.PRE_OPEN, MarketPhase.CLOSING_AUCTION])
def test_call_auction_then_limit_day_only(phase: MarketPhase) -> None:
    e = engine(phase=phase)
    approve(e, intent())
    assert code(decide(e, intent(price=0, order_type=OrderType.MARKET))) == Reason.ORDER_TYPE
    assert code(decide(e, intent(tif=TimeInForce.IOC))) == Reason.ORDER_TYPE
    d = decide(e, intent(tif=TimeInForce.FOK))
    assert code(d) == Reason.ORDER_TYPE and phase.value in reason(d) and "FOK" in reason(d)
    assert code(decide(e, intent(order_type=OrderType.BEST))) == Reason.ORDER_TYPE


def test_continuous_then_market_and_ioc_pass() -> None:
    e = engine()
    approve(e, intent(price=0, order_type=OrderType.MARKET))
    approve(e, intent(tif=TimeInForce.IOC))


def test_vi_on_a_symbol_then_its_own_code_until_the_symbol_resumes() -> None:
    e = engine()
    e.on_phase(phase_changed(MarketPhase.VI, SYM))
    approve(e, intent())  # limit DAY passes a VI
    assert code(decide(e, intent(tif=TimeInForce.IOC))) == Reason.VI_IN_EFFECT
    assert code(decide(e, intent(price=0, order_type=OrderType.MARKET))) == Reason.VI_IN_EFFECT
    approve(e, intent(symbol=SYM2, price=180_000, tif=TimeInForce.IOC))  # other symbols trade
    e.on_phase(phase_changed(MarketPhase.CONTINUOUS))  # a market-wide change does not end it
    assert code(decide(e, intent(tif=TimeInForce.IOC))) == Reason.VI_IN_EFFECT
    e.on_phase(phase_changed(MarketPhase.CONTINUOUS, SYM))
    approve(e, intent(tif=TimeInForce.IOC))


def test_symbol_halt_overrides_the_market_until_the_symbol_resumes() -> None:
    e = engine()
    e.on_phase(phase_changed(MarketPhase.HALTED, SYM))
    d = decide(e, intent())
    assert code(d) == Reason.MARKET_HALTED and SYM in reason(d)
    approve(e, intent(symbol=SYM2, price=180_000))
    e.on_phase(phase_changed(MarketPhase.CONTINUOUS, SYM))
    approve(e, intent())


def test_market_close_then_vis_are_forgotten() -> None:
    e = engine()
    e.on_phase(phase_changed(MarketPhase.VI, SYM))
    e.on_phase(phase_changed(MarketPhase.CLOSED))
    e.on_phase(phase_changed(MarketPhase.CONTINUOUS))
    approve(e, intent(tif=TimeInForce.IOC))


# ---------------------------------------------------------------------------- price collar
@pytest.mark.parametrize("price,ok", [(70_700, True), (70_800, False), (69_300, True),
                                      (69_200, False)])  # fmt: skip
def test_price_collar_from_last_trade(price: int, ok: bool) -> None:
    e = engine(price_collar_bp=100)  # 1% of 70,000 = 700
    e.on_trade(trade(70_000))
    d = decide(e, intent(qty=1, price=price))
    if ok:
        assert isinstance(d, SubmitOrder)
    else:
        assert code(d) == Reason.PRICE_COLLAR and "last trade 70000" in reason(d)


def test_price_collar_without_a_last_trade_then_not_applied() -> None:
    approve(engine(price_collar_bp=1), intent(price=90_000))


def test_price_collar_per_symbol() -> None:
    e = engine(price_collar_bp=100, symbols={SYM: {"price_collar_bp": 1_000}})
    e.on_trade(trade(70_000))
    approve(e, intent(price=77_000))
    assert code(decide(e, intent(price=77_100))) == Reason.PRICE_COLLAR


# ---------------------------------------------------------------------------- position
def test_position_qty_counts_holdings_and_open_buys() -> None:
    e = engine(max_position_qty=20)
    holding(e, 5)
    approve(e, intent(qty=10))
    approve(e, intent(qty=5))  # 5 held + 10 open + 5 = 20
    d = decide(e, intent(qty=1))
    assert code(d) == Reason.MAX_POSITION and "21 shares > max_position_qty 20" in reason(d)
    approve(e, intent(qty=5, side=Side.SELL, price=70_100))  # never a bigger position


def test_position_notional_at_mark_plus_open_buys() -> None:
    e = engine(max_position_notional=1_449_000)
    holding(e, 10)
    e.on_trade(trade(70_000))
    approve(e, intent(qty=10))  # 700,000 held + 700,000
    approve(e, intent(qty=1, price=49_000))  # 1,449,000
    d = decide(e, intent(qty=1, price=49_000))
    assert code(d) == Reason.MAX_POSITION and "1,498,000 KRW > max_position_notional" in reason(d)
    e.on_trade(trade(65_000))  # the holding is worth 50,000 less
    approve(e, intent(qty=1, price=49_000))


def test_position_limit_per_symbol_override() -> None:
    e = engine(max_position_qty=10, symbols={SYM2: {"max_position_qty": 3}})
    approve(e, intent(qty=10))
    approve(e, intent(qty=3, symbol=SYM2, price=180_000))
    assert code(decide(e, intent(qty=1, symbol=SYM2, price=180_000))) == Reason.MAX_POSITION


def test_position_limit_per_strategy_counts_its_own_position() -> None:
    e = engine(strategies={"small": {"max_position_qty": 4}})
    approve(e, intent(qty=100))  # another strategy
    approve(e, intent(qty=4, strategy="small"))
    d = decide(e, intent(qty=1, strategy="small"))
    assert code(d) == Reason.MAX_POSITION and "small position" in reason(d)


# ---------------------------------------------------------------------------- exposure
def test_gross_exposure_positions_and_open_orders() -> None:
    e = engine(max_gross_exposure=2_100_000)
    holding(e, 10)  # 700,000 at the base price
    approve(e, intent(qty=10))
    approve(e, intent(qty=10, price=65_000))  # 2,050,000
    d = decide(e, intent(qty=1, price=51_000))
    assert code(d) == Reason.MAX_GROSS_EXPOSURE and "2,101,000 > max_gross_exposure" in reason(d)
    approve(e, intent(qty=1, price=50_000))
    approve(e, intent(qty=10, side=Side.SELL, price=70_100))  # shrinks: not held back


def test_gross_exposure_marked_at_the_last_trade() -> None:
    e = engine(max_gross_exposure=1_000_000)
    holding(e, 10)
    e.on_trade(trade(90_000))  # 900,000
    approve(e, intent(qty=1, price=90_000))  # 990,000
    assert code(decide(e, intent(qty=1, price=50_000))) == Reason.MAX_GROSS_EXPOSURE


def test_net_exposure_counts_open_buys_long() -> None:
    e = engine(max_net_exposure=700_000)
    approve(e, intent(qty=10))
    assert code(decide(e, intent(qty=1, symbol=SYM2, price=180_000))) == Reason.MAX_NET_EXPOSURE


def test_exposure_per_strategy() -> None:
    e = engine(strategies={"small": {"max_gross_exposure": 700_000}})
    approve(e, intent(qty=100))
    approve(e, intent(qty=10, strategy="small"))
    d = decide(e, intent(qty=1, strategy="small"))
    assert code(d) == Reason.MAX_GROSS_EXPOSURE and reason(d).startswith("small gross")


# ---------------------------------------------------------------------------- counts
def test_open_orders_total_per_symbol_per_strategy() -> None:
    e = engine(max_open_orders=3, max_open_orders_per_symbol=2,
               strategies={"s": {"max_open_orders": 1}})  # fmt: skip
    a = approve(e, intent(qty=1))
    approve(e, intent(qty=2))
    d = decide(e, intent(qty=3))
    assert code(d) == Reason.MAX_OPEN_ORDERS and "max 2 for the symbol" in reason(d)
    approve(e, intent(qty=1, symbol=SYM2, price=180_000))
    d = decide(e, intent(qty=1, symbol=SYM2, price=180_000, strategy="s"))
    assert code(d) == Reason.MAX_OPEN_ORDERS and "max_open_orders 3" in reason(d)
    e.on_exec(canceled(a.client_order_id))
    approve(e, intent(qty=1, symbol=SYM2, price=180_000, strategy="s"))
    e.on_exec(fill(2, coid=a.client_order_id))  # fills of a closed order change nothing open
    d = decide(e, intent(qty=1, symbol=SYM2, price=180_000, strategy="s"))
    assert code(d) == Reason.MAX_OPEN_ORDERS


def test_orders_per_day_total_symbol_strategy_and_reset_next_kst_day() -> None:
    e = engine(max_orders_per_day=3, max_orders_per_day_per_symbol=2,
               strategies={"s": {"max_orders_per_day": 1}})  # fmt: skip
    approve(e, intent(qty=1))
    approve(e, intent(qty=1, strategy="s"))
    d = decide(e, intent(qty=1))
    assert code(d) == Reason.MAX_ORDERS_PER_DAY and "max 2 for the symbol" in reason(d)
    d = decide(e, intent(qty=1, symbol=SYM2, price=180_000, strategy="s"))
    assert code(d) == Reason.MAX_ORDERS_PER_DAY and "max 1 for the strategy" in reason(d)
    approve(e, intent(qty=1, symbol=SYM2, price=180_000))
    d = decide(e, intent(qty=1, symbol=SYM2, price=180_000))
    assert code(d) == Reason.MAX_ORDERS_PER_DAY and "max_orders_per_day 3" in reason(d)
    midnight = (kst_day(NOW) + 1) * DAY_NS - 9 * 3_600 * 10**9  # 00:00 KST next day
    assert kst_day(midnight - 1) == kst_day(NOW)
    d = decide(e, intent(qty=1, created_ns=midnight - 1), now=midnight - 1)
    assert code(d) == Reason.MAX_ORDERS_PER_DAY
    approve(e, intent(qty=1, created_ns=midnight), now=midnight)


def test_cancels_per_day_then_denied_with_the_order_figures() -> None:
    e = engine(max_cancels_per_day=5, max_cancels_per_day_per_symbol=2)
    a = approve(e, intent(qty=1))
    assert isinstance(decide(e, cancel(a.client_order_id)), CancelOrder)
    assert isinstance(decide(e, cancel(a.client_order_id)), CancelOrder)
    d = decide(e, cancel(a.client_order_id))
    assert code(d) == Reason.MAX_CANCELS_PER_DAY and "2 cancels of 005930" in reason(d)
    assert isinstance(d, IntentDenied) and d.symbol == SYM
    assert isinstance(decide(e, cancel("unknown")), CancelOrder)  # no symbol: total only
    e2 = engine(strategies={"s": {"max_cancels_per_day": 1}})
    assert isinstance(decide(e2, cancel("x", "s")), CancelOrder)
    assert code(decide(e2, cancel("x", "s"))) == Reason.MAX_CANCELS_PER_DAY
    assert isinstance(decide(e2, cancel("x")), CancelOrder)


def test_cancel_counts_survive_a_restart_on_the_same_kst_day() -> None:
    e = engine(max_cancels_per_day=3, max_cancels_per_day_per_symbol=2)
    a = approve(e, intent(qty=1))
    decide(e, cancel(a.client_order_id))
    decide(e, cancel(a.client_order_id))
    saved = e.cancel_counts()
    assert saved["account"] == 2 and saved["symbols"] == {SYM: 2}
    restarted = engine(max_cancels_per_day=3, max_cancels_per_day_per_symbol=2)
    assert restarted.restore_cancels(saved, NOW)
    b = approve(restarted, intent(qty=1))
    assert code(decide(restarted, cancel(b.client_order_id))) == Reason.MAX_CANCELS_PER_DAY
    assert isinstance(decide(restarted, cancel("unknown")), CancelOrder)  # account: 3rd of 3
    assert code(decide(restarted, cancel("unknown"))) == Reason.MAX_CANCELS_PER_DAY
    # yesterday's counts are not today's
    fresh = engine(max_cancels_per_day=3)
    assert not fresh.restore_cancels(saved, NOW + 86_400 * 10**9)
    assert fresh.cancel_counts()["account"] == 0


# ---------------------------------------------------------------------------- throttle
def test_throttle_token_bucket_shared_by_strategies() -> None:
    e = engine(submit_rate_per_s=10.0, submit_burst=2)
    m = 10**12
    approve(e, intent(qty=1), mono=m)
    approve(e, intent(qty=1, strategy="other"), mono=m)
    d = decide(e, intent(qty=1), mono=m + 99_999_999)
    assert code(d) == Reason.THROTTLED and "10/s" in reason(d)
    approve(e, intent(qty=1), mono=m + 100_000_000)  # one token back after 1/10 s


def test_throttle_defaults_from_the_broker() -> None:
    cfg = RiskSettings()
    assert submit_rate(cfg, BrokerSettings(type="kis", mode="live")) == (15.0, 3)
    assert submit_rate(cfg, BrokerSettings(type="kiwoom", mode="live")) == (4.0, 1)
    assert submit_rate(cfg, BrokerSettings(type="kis", mode="paper")) == (1.0, 1)
    assert submit_rate(cfg, BrokerSettings()) == (1_000.0, 100)
    cfg = RiskSettings(submit_rate_per_s=3.0)
    assert submit_rate(cfg, BrokerSettings(type="kis", mode="live")) == (3.0, 3)


# ---------------------------------------------------------------------------- buying power
def test_buying_power_cash_minus_open_buys_with_commission() -> None:
    # 1.5 bp: commission(n) = n * 3 // 20_000
    e = engine(cash=980_147)
    approve(e, intent(qty=7))  # 490,000
    approve(e, intent(qty=7, price=70_000))  # 980,000 + 147 commission = 980,147
    d = decide(e, intent(qty=1, price=49_000))
    assert code(d) == Reason.INSUFFICIENT_CASH and "> cash 980,147" in reason(d)


def test_buying_power_after_fills_with_fees_and_tax() -> None:
    e = engine(cash=1_000_000)
    buy = approve(e, intent(qty=10))
    e.on_exec(fill(10, coid=buy.client_order_id))
    fee = krx.commission(700_000, 1.5)
    assert e.cash() == 1_000_000 - 700_000 - fee
    sell = approve(e, intent(qty=10, side=Side.SELL))
    e.on_exec(fill(10, Side.SELL, coid=sell.client_order_id))
    tax = krx.sell_tax(700_000, krx.Market.KOSPI, dt.date(2026, 6, 2))
    assert tax == 1_400
    assert e.cash() == 1_000_000 - 2 * fee - tax


def test_fast_commission_matches_krx() -> None:
    e = RiskEngine(RiskSettings())
    for n in (0, 1, 6_666, 70_000, 123_456_789, 10**12 + 7):
        assert n * e._fee_num // e._fee_den == krx.commission(n, 1.5)


# ---------------------------------------------------------------------------- duplicates
def test_duplicate_order_window() -> None:
    e = engine(duplicate_window_ms=100)
    m = 10**12
    approve(e, intent(qty=3), mono=m)
    d = decide(e, intent(qty=3), mono=m + 99_999_999)
    assert code(d) == Reason.DUPLICATE_ORDER and "duplicate_window_ms 100" in reason(d)
    approve(e, intent(qty=4), mono=m + 99_999_999)  # another quantity
    approve(e, intent(qty=3, strategy="other"), mono=m + 99_999_999)  # another strategy
    approve(e, intent(qty=3), mono=m + 100_000_000)


def test_duplicate_window_off_then_same_order_passes() -> None:
    e = engine(duplicate_window_ms=0)
    approve(e, intent(qty=3), mono=5)
    approve(e, intent(qty=3), mono=5)


# ---------------------------------------------------------------------------- self-cross
def test_self_cross_buy_at_or_above_own_sell() -> None:
    e = engine()
    holding(e, 10)
    approve(e, intent(qty=5, side=Side.SELL, price=71_000))
    approve(e, intent(qty=1, price=70_900))
    d = decide(e, intent(qty=1, price=71_000))
    assert code(d) == Reason.SELF_CROSS and reason(d) == "buy at 71000 >= own open sell at 71000"
    assert code(decide(e, intent(qty=1, price=0, order_type=OrderType.MARKET))) == (
        Reason.SELF_CROSS
    )


def test_self_cross_sell_at_or_below_own_buy_of_another_strategy() -> None:
    e = engine()
    holding(e, 10)
    approve(e, intent(qty=1, price=70_000, strategy="other"))
    approve(e, intent(qty=1, side=Side.SELL, price=70_100))
    d = decide(e, intent(qty=1, side=Side.SELL, price=70_000))
    assert code(d) == Reason.SELF_CROSS


def test_self_cross_off() -> None:
    e = engine(self_cross=False)
    holding(e, 10)
    approve(e, intent(qty=5, side=Side.SELL, price=70_000))
    approve(e, intent(qty=1, price=70_000))


# ---------------------------------------------------------------------------- daily loss
def test_daily_loss_then_only_shrinking_orders() -> None:
    e = engine(max_daily_loss=100_105)
    buy = approve(e, intent(qty=10))
    e.on_exec(fill(10, coid=buy.client_order_id))  # commission 105
    e.on_trade(trade(60_000))  # unrealised -100,000
    assert e.acct.day_pnl() == -100_105
    approve(e, intent(qty=1, price=60_000))
    e.on_trade(trade(59_900))
    d = decide(e, intent(qty=1, price=59_900))
    assert code(d) == Reason.DAILY_LOSS and "lost 101,105 today" in reason(d)
    approve(e, intent(qty=10, side=Side.SELL, price=60_100))  # shrinks the position


def test_daily_loss_per_strategy() -> None:
    e = engine(strategies={"s": {"max_daily_loss": 50_000}})
    buy = approve(e, intent(qty=10, strategy="s"))
    e.on_exec(fill(10, coid=buy.client_order_id, strategy="s"))
    e.on_trade(trade(64_000))
    d = decide(e, intent(qty=1, price=64_000, strategy="s"))
    assert code(d) == Reason.DAILY_LOSS and isinstance(d, IntentDenied) and d.strategy == "s"
    approve(e, intent(qty=1, price=64_000))  # other strategies trade on


def test_daily_loss_counts_from_the_day_start_mark() -> None:
    e = engine(max_daily_loss=1_000)
    yesterday = NOW - DAY_NS
    e.on_exec(fill(10, ts_ns=yesterday))  # history: bought yesterday at 70,000
    e.on_trade(trade(60_000))  # yesterday's close
    decide(e, intent(qty=1, price=60_000), now=NOW)  # first decision today: day rolls
    e.on_trade(trade(59_900))  # today -1,000
    approve(e, intent(qty=1, price=59_900, created_ns=NOW + 1), now=NOW + 1)
    e.on_trade(trade(59_800))
    assert code(decide(e, intent(qty=1, price=59_800))) == Reason.DAILY_LOSS
