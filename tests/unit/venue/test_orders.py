"""Order checks a broker makes (symbol, tick, daily limit, cash, holdings, session), costs to
the won, cancels and expiry at the close."""

from __future__ import annotations

import pytest

from protocol.enums import InstrumentKind, MarketPhase, OrderType, Side, TimeInForce
from services.venue.matching import EXPIRED, OPEN, Venue
from tests.unit.venue.kit import (
    BP,
    CASH,
    NOW,
    SYM,
    book,
    buy,
    fee,
    instrument,
    kst_ns,
    phase,
    sell,
    trade,
    venue,
)

ASKS = [(70_000, 100), (70_100, 100)]
BIDS = [(69_900, 100), (69_800, 100)]


@pytest.mark.parametrize(
    ("symbol", "qty", "price", "order_type", "code"),
    [
        ("999999", 1, 70_000, OrderType.LIMIT, "UNKNOWN_SYMBOL"),
        (SYM, 0, 70_000, OrderType.LIMIT, "BAD_ORDER"),
        (SYM, -5, 70_000, OrderType.LIMIT, "BAD_ORDER"),
        (SYM, 1, 0, OrderType.LIMIT, "BAD_ORDER"),
        (SYM, 1, 70_000, OrderType.MARKET, "BAD_ORDER"),  # a market order carries price 0
        (SYM, 1, 70_000, OrderType.BEST, "BAD_ORDER"),  # not modelled: refused, not guessed
        (SYM, 1, 70_050, OrderType.LIMIT, "TICK_SIZE"),
        (SYM, 1, 92_400, OrderType.LIMIT, "PRICE_LIMIT"),  # upper limit 92,300
        (SYM, 1, 49_600, OrderType.LIMIT, "PRICE_LIMIT"),  # lower limit 49,700
    ],
)
def test_buy_when_order_is_invalid_then_rejected_with_code_and_no_number_used(
    symbol: str, qty: int, price: int, order_type: OrderType, code: str
) -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = v.submit(symbol, Side.BUY, qty, price, order_type, TimeInForce.DAY, NOW)

    assert r.order is None and r.rejected is not None
    assert r.rejected.code == code and r.rejected.message
    assert v.next_no == 1 and v.open == {} and v.cash == CASH


def test_limit_when_on_band_boundary_tick_then_accepted() -> None:
    v = venue()

    r = buy(v, 1, 92_300)  # the upper limit itself

    assert r.rejected is None and r.order is not None


def test_etf_when_priced_on_5_won_tick_then_accepted_where_a_stock_would_be_refused() -> None:
    v = venue()
    v.on_instrument(instrument("069500", base=35_000, kind=InstrumentKind.ETF))

    r = buy(v, 1, 35_005, symbol="069500")

    assert r.rejected is None


def test_order_numbers_when_issued_then_zero_padded_and_increasing() -> None:
    v = venue()

    numbers = [buy(v, 1, 60_000).order.order_no for _ in range(3)]  # type: ignore[union-attr]

    assert numbers == ["0000000001", "0000000002", "0000000003"]


def test_buy_when_cost_exceeds_cash_then_insufficient_cash() -> None:
    v = venue(cash=700_104)  # 10 x 70,000 + 105 commission = 700,105

    r = buy(v, 10, 70_000)

    assert r.rejected is not None and r.rejected.code == "INSUFFICIENT_CASH"


def test_buy_when_cash_reserved_by_open_buy_then_second_buy_refused_until_cancel() -> None:
    v = venue(cash=1_000_000)
    first = buy(v, 10, 60_000)  # rests (no book): reserves 600,000 + 90
    assert v.reserved_cash() == 600_090

    refused = buy(v, 10, 60_000)
    v.cancel(first.order.order_no)  # type: ignore[union-attr]
    accepted = buy(v, 10, 60_000)

    assert refused.rejected is not None and refused.rejected.code == "INSUFFICIENT_CASH"
    assert accepted.rejected is None


def test_market_buy_when_cash_covers_best_ask_but_not_upper_limit_then_refused() -> None:
    v = venue(cash=8_000_000)  # 8,000,000: 100 x 70,000 fits, 100 x 92,300 does not
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 100, 0, order_type=OrderType.MARKET)

    assert r.rejected is not None and r.rejected.code == "INSUFFICIENT_CASH"


def test_sell_when_no_holdings_then_refused_no_short_selling() -> None:
    v = venue()

    r = sell(v, 1, 70_000)

    assert r.rejected is not None and r.rejected.code == "INSUFFICIENT_HOLDINGS"


def test_sell_when_holdings_committed_to_open_sell_then_second_sell_refused() -> None:
    v = venue(holdings={SYM: 10})
    first = sell(v, 6, 80_000)

    refused = sell(v, 5, 80_000)
    allowed = sell(v, 4, 80_000)

    assert first.order is not None and first.order.status == OPEN
    assert refused.rejected is not None and refused.rejected.code == "INSUFFICIENT_HOLDINGS"
    assert allowed.rejected is None and v.sellable(SYM) == 0


def test_buy_then_sell_when_filled_then_cash_is_exact_to_the_won() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)
    b1 = buy(v, 30, 70_000)  # one fill: 2,100,000, fee 315
    v.on_book(book([(71_000, 7), (70_900, 100)], [(71_100, 100)]), 0)

    s = sell(v, 10, 70_900, now=NOW)  # 7 @ 71,000 and 3 @ 70,900 on 2025-12-26

    assert [(f.commission, f.tax) for f in b1.fills] == [(315, 0)]
    # 497,000: fee 74 (74.55), tax 0.15% (settles 2025-12-30) 745 (745.5)
    # 212,700: fee 31 (31.905), tax 319 (319.05)
    assert [(f.qty, f.price, f.commission, f.tax) for f in s.fills] == [
        (7, 71_000, 74, 745),
        (3, 70_900, 31, 319),
    ]
    expected = CASH - 2_100_000 - 315 + (497_000 - 74 - 745) + (212_700 - 31 - 319)
    assert v.cash == expected
    assert v.holdings[SYM] == 20


def test_sell_when_settlement_falls_in_next_year_then_next_years_tax_rate() -> None:
    v = venue(holdings={SYM: 10})
    v.on_book(book([(70_000, 100)], ASKS), 0)

    # traded Tuesday 2025-12-30 KST, settles Thursday 2026-01-01: the 2026 rate, 0.20%
    s = sell(v, 10, 70_000, now=kst_ns(2025, 12, 30))

    assert [(f.commission, f.tax) for f in s.fills] == [(fee(700_000), 1_400)]
    assert v.cash == CASH + 700_000 - 105 - 1_400


def test_sell_when_evening_utc_is_next_day_in_seoul_then_kst_date_decides() -> None:
    v = venue(holdings={SYM: 10})
    v.on_book(book([(70_000, 100)], ASKS), 0)

    # 2025-12-29 23:30 UTC is 2025-12-30 08:30 KST: settles 2026-01-01 (0.20%)
    ts = kst_ns(2025, 12, 30, hh=8) + 30 * 60 * 1_000_000_000
    s = sell(v, 10, 70_000, now=ts)

    assert s.fills[0].tax == 1_400


def test_etf_sell_when_filled_then_no_transaction_tax() -> None:
    v = Venue(CASH, BP)
    v.on_instrument(instrument("069500", base=35_000, kind=InstrumentKind.ETF))
    v.holdings = {"069500": 10}
    v.on_book(book([(35_000, 100)], [(35_005, 100)], symbol="069500"), 0)

    s = sell(v, 10, 35_000, symbol="069500")

    assert [(f.commission, f.tax) for f in s.fills] == [(52, 0)]


def test_resting_fill_when_trade_prints_then_costs_use_the_fill_time() -> None:
    v = venue(holdings={SYM: 10})
    v.on_book(book(BIDS, ASKS), 0)
    sell(v, 10, 70_500)

    fills = v.on_trade(trade(70_600, 10), kst_ns(2025, 12, 30))

    # 2026 settlement, KOSPI: 0.05% transaction tax + 0.15% rural tax, each truncated
    assert fills[0].tax == 705_000 * 5 // 10_000 + 705_000 * 15 // 10_000 == 352 + 1_057


def test_cancel_when_open_then_canceled_with_leaves_and_cash_released() -> None:
    v = venue()
    v.on_book(book(BIDS, [(70_000, 4)]), 0)
    r = buy(v, 10, 70_000)
    assert r.order is not None

    canceled = v.cancel(r.order.order_no)

    assert canceled is r.order and canceled.status == "canceled" and canceled.leaves == 6
    assert v.reserved_cash() == 0 and v.open == {}
    assert v.cancel(r.order.order_no) is None
    assert v.cancel("0000009999") is None


def test_close_when_orders_open_then_all_expire_and_new_orders_refused() -> None:
    v = venue(holdings={SYM: 10})
    b = buy(v, 1, 60_000)
    s = sell(v, 5, 80_000)

    expired = v.on_phase(phase(MarketPhase.CLOSED)).closed
    refused = buy(v, 1, 60_000)

    assert {o.order_no for o in expired} == {b.order.order_no, s.order.order_no}  # type: ignore[union-attr]
    assert all(o.status == EXPIRED and o.reason for o in expired)
    assert v.open == {} and v.reserved_cash() == 0 and v.sellable(SYM) == 10
    assert refused.rejected is not None and refused.rejected.code == "MARKET_CLOSED"


def test_market_when_reopened_or_one_symbol_changes_phase_then_orders_accepted() -> None:
    v = venue()
    v.on_phase(phase(MarketPhase.CLOSED))
    v.on_phase(phase(MarketPhase.CONTINUOUS))
    kept = buy(v, 1, 60_000)

    done = v.on_phase(phase(MarketPhase.VI, symbol=SYM))

    assert kept.rejected is None and done.closed == [] and done.fills == []
    assert v.open != {} and v.phase_of(SYM) is MarketPhase.VI


def test_resting_order_when_no_reference_data_then_waits_for_instrument() -> None:
    v = venue()
    r = buy(v, 5, 60_000)
    restarted = Venue(v.cash, BP)
    restarted.restore(v.cash, {}, v.next_no, [r.order])  # type: ignore[list-item]

    before = restarted.on_trade(trade(59_900, 5), NOW)
    restarted.on_instrument(instrument())
    after = restarted.on_trade(trade(59_900, 5), NOW)

    assert before == [] and [f.qty for f in after] == [5]
