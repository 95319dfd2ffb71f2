"""Call auctions: the uncross price (KRX's own worked examples and hand-computed books), the
opening and closing auctions, a symbol's VI and halt, and what each phase does to prints,
snapshots and orders."""

from __future__ import annotations

import pytest

from protocol.enums import MarketPhase, OrderType, Side, TimeInForce
from services.venue.matching import CANCELED, EXPIRED, FILLED, OPEN, uncross_price
from tests.unit.venue.kit import (
    CASH,
    SYM,
    book,
    buy,
    fee,
    instrument,
    phase,
    sell,
    trade,
    venue,
)

OTHER = "000660"  # base 71,000 too (kit.instrument), its own phase

# ------------------------------------------------------------------ uncross_price


def test_uncross_when_krx_example_single_matching_price_then_7830_for_600() -> None:
    # KRX Global GLB0606030102T1, first table: 600 execute at 7,830
    sells = [(7_860, 450), (7_850, 750), (7_840, 300), (7_830, 150), (7_830, 200), (7_830, 50)]
    sells += [(7_820, 200), (7_810, 150)]
    buys = [(7_850, 100), (7_840, 150), (7_830, 200), (7_830, 150), (7_820, 400), (7_810, 500)]
    buys += [(7_800, 650)]

    assert uncross_price(buys, sells, reference=7_830) == (7_830, 600)


BUYS_2 = [(7_850, 200), (7_840, 100)]
SELLS_2 = [(7_810, 100), (7_800, 200)]


def test_uncross_when_several_matching_prices_include_reference_then_reference() -> None:
    # KRX example 2: 7,840/7,830/7,820/7,810 all execute 300; the preceding price is 7,820
    assert uncross_price(BUYS_2, SELLS_2, reference=7_820) == (7_820, 300)


def test_uncross_when_reference_outside_matching_prices_then_closest_to_it() -> None:
    # KRX example 3: preceding price 7,850 -> 7,840
    assert uncross_price(BUYS_2, SELLS_2, reference=7_850) == (7_840, 300)
    # and from below: 7,700 -> 7,810
    assert uncross_price(BUYS_2, SELLS_2, reference=7_700) == (7_810, 300)


def test_uncross_when_reference_between_two_ticks_then_lower_of_the_two() -> None:
    # 7,825 is no price (tick 10): 7,820 and 7,830 are equally close
    assert uncross_price(BUYS_2, SELLS_2, reference=7_825) == (7_820, 300)


def test_uncross_when_one_side_rationed_then_orders_beyond_the_price_execute_in_full() -> None:
    # market buy 100; sells 50 @ 7,800 and 100 @ 7,810. 100 execute at any price >= 7,810, but
    # above 7,810 the 150 sells priced below could not all execute: the price is 7,810 even
    # though the preceding price is 7,850
    assert uncross_price([(0, 100)], [(7_800, 50), (7_810, 100)], reference=7_850) == (7_810, 100)


def test_uncross_when_only_market_orders_then_reference_price() -> None:
    assert uncross_price([(0, 70)], [(0, 50)], reference=71_000) == (71_000, 50)


def test_uncross_when_book_does_not_cross_then_none() -> None:
    assert uncross_price([(70_900, 100)], [(71_000, 100)], reference=71_000) is None
    assert uncross_price([], [(71_000, 100)], reference=71_000) is None
    assert uncross_price([(0, 10)], [], reference=71_000) is None


# ------------------------------------------------------------------ opening auction


def test_opening_auction_when_buy_crosses_book_then_no_fill_until_open_then_one_price() -> None:
    v = venue()
    v.on_phase(phase(MarketPhase.PRE_OPEN))
    v.on_book(book([(70_900, 300), (70_800, 500)], [(71_000, 200), (71_100, 400)]), 0)

    r = buy(v, 500, 71_100)
    during = v.on_trade(trade(71_000, 50), 1)  # a print in an auction fills nothing
    done = v.on_phase(phase(MarketPhase.CONTINUOUS), 2)

    # D(71,000) = 500 vs S = 200; D(71,100) = 500 vs S = 600 -> 500 execute at 71,100, all at
    # the one price although 200 were offered at 71,000
    assert r.order is not None and r.fills == [] and during == []
    assert [(f.qty, f.price, f.ts_ns) for f in done.fills] == [(500, 71_100, 2)]
    assert r.order.status == FILLED and done.closed == []
    assert v.cash == CASH - 500 * 71_100 - fee(500 * 71_100)
    assert v.last_price[SYM] == 71_100


def test_opening_auction_when_no_trade_yet_then_reference_is_base_price() -> None:
    v = venue()  # base price 71,000
    v.on_phase(phase(MarketPhase.PRE_OPEN))
    v.on_book(book([], [(70_500, 100)]), 0)
    r = buy(v, 100, 71_500)

    done = v.on_phase(phase(MarketPhase.CONTINUOUS), 1)

    # 100 execute anywhere in [70,500, 71,500]: the base price 71,000 is among them
    assert r.order is not None and [(f.qty, f.price) for f in done.fills] == [(100, 71_000)]


def test_opening_auction_when_displayed_shares_at_the_price_then_they_fill_before_ours() -> None:
    v = venue(holdings={SYM: 200})
    v.on_phase(phase(MarketPhase.PRE_OPEN))
    v.on_book(book([(71_000, 400)], [(71_000, 300)]), 0)  # an auction book may cross
    r = sell(v, 200, 71_000)

    done = v.on_phase(phase(MarketPhase.CONTINUOUS), 1)

    # 400 bought vs 500 offered at 71,000: the 300 displayed first, then 100 of ours
    assert r.order is not None and [(f.qty, f.price) for f in done.fills] == [(100, 71_000)]
    assert r.order.status == OPEN and r.order.leaves == 100
    assert r.order.queue_ahead == 0  # nothing displayed at 71,000 is left ahead of it


def test_opening_auction_when_our_orders_both_sides_then_priority_by_price_then_time() -> None:
    v = venue(holdings={SYM: 300})
    v.on_phase(phase(MarketPhase.PRE_OPEN))
    v.on_book(book([], []), 0)
    first = buy(v, 100, 71_000, now=1)
    better = buy(v, 100, 71_100, now=2)
    later = buy(v, 100, 71_000, now=3)
    s = sell(v, 250, 71_000)

    done = v.on_phase(phase(MarketPhase.CONTINUOUS), 4)

    # D(71,000) = 300, S = 250 -> 250 at 71,000: 71,100 first, then the earlier 71,000
    assert first.order and better.order and later.order
    by_order = {f.order.order_no: f.qty for f in done.fills if f.order.side is Side.BUY}
    assert by_order == {
        better.order.order_no: 100,
        first.order.order_no: 100,
        later.order.order_no: 50,
    }
    assert {f.price for f in done.fills} == {71_000}
    assert s.order is not None and s.order.status == FILLED


def test_market_order_in_auction_when_resting_then_reserves_upper_limit_and_rest_canceled() -> None:
    v = venue()
    v.on_phase(phase(MarketPhase.PRE_OPEN))
    v.on_book(book([], [(71_000, 60)]), 0)
    r = buy(v, 100, 0, OrderType.MARKET)
    upper = instrument().upper_limit
    assert r.order is not None and r.order.status == OPEN
    assert v.reserved_cash() == 100 * upper + fee(100 * upper)

    done = v.on_phase(phase(MarketPhase.CONTINUOUS), 1)

    assert [(f.qty, f.price) for f in done.fills] == [(60, 71_000)]
    assert done.closed == [r.order] and r.order.status == CANCELED
    assert "market order remainder" in r.order.reason and v.reserved_cash() == 0


@pytest.mark.parametrize(
    ("order_type", "tif", "price", "code"),
    [
        (OrderType.BEST, TimeInForce.DAY, 0, "ORDER_TYPE_PHASE"),
        (OrderType.PRIORITY, TimeInForce.DAY, 0, "ORDER_TYPE_PHASE"),
        (OrderType.CONDITIONAL, TimeInForce.DAY, 71_000, "ORDER_TYPE_PHASE"),
        (OrderType.LIMIT, TimeInForce.IOC, 71_000, "TIF_PHASE"),
        (OrderType.MARKET, TimeInForce.FOK, 0, "TIF_PHASE"),
    ],
)
@pytest.mark.parametrize(
    ("scope", "auction"),
    [("", MarketPhase.PRE_OPEN), ("", MarketPhase.CLOSING_AUCTION), (SYM, MarketPhase.VI)],
)
def test_auction_when_order_type_or_condition_is_continuous_only_then_rejected(
    order_type: OrderType, tif: TimeInForce, price: int, code: str, scope: str, auction: MarketPhase
) -> None:
    v = venue()
    v.on_book(book([(70_900, 10)], [(71_000, 10)]), 0)
    v.on_phase(phase(auction, symbol=scope))

    r = buy(v, 1, price, order_type, tif)

    assert r.rejected is not None and r.rejected.code == code and r.order is None
    assert auction.value in r.rejected.message and v.next_no == 1


# ------------------------------------------------------------------ closing auction


def test_closing_auction_when_conditional_order_open_then_trades_as_market_then_rest_expires() -> (
    None
):
    v = venue(holdings={SYM: 80})
    v.on_book(book([(70_000, 100)], [(70_200, 100)]), 0)
    cond = sell(v, 80, 70_300, OrderType.CONDITIONAL)  # rests above the ask: a limit order
    low = buy(v, 10, 69_900)
    v.on_trade(trade(70_100, 5), 1)
    assert cond.order is not None and cond.order.status == OPEN and cond.fills == []

    v.on_phase(phase(MarketPhase.CLOSING_AUCTION), 2)
    v.on_book(book([(70_000, 100)], [(70_200, 100)]), 3)  # no matching in the auction
    done = v.on_phase(phase(MarketPhase.CLOSED), 4)

    # the conditional sell is now a market sell of 80: demand is 100 @ 70,000 (plus our 10 @
    # 69,900), so 80 execute at 70,000 although it was priced at 70,300
    assert [(f.order.order_no, f.qty, f.price) for f in done.fills] == [
        (cond.order.order_no, 80, 70_000)
    ]
    assert low.order is not None and done.closed == [low.order] and low.order.status == EXPIRED
    assert v.open == {} and v.holdings[SYM] == 0


def test_closing_auction_when_conditional_submitted_then_refused_and_limit_accepted() -> None:
    v = venue()
    v.on_phase(phase(MarketPhase.CLOSING_AUCTION))

    cond = buy(v, 1, 70_000, OrderType.CONDITIONAL)
    limit = buy(v, 1, 70_000)

    assert cond.rejected is not None and cond.rejected.code == "ORDER_TYPE_PHASE"
    assert limit.order is not None and limit.order.status == OPEN


def test_continuous_to_closing_auction_when_resting_order_then_joins_auction_not_prints() -> None:
    v = venue()
    v.on_book(book([(70_000, 100)], [(70_200, 100)]), 0)
    r = buy(v, 10, 70_100)  # rests inside the spread
    v.on_phase(phase(MarketPhase.CLOSING_AUCTION), 1)

    through = v.on_trade(trade(70_000, 50), 2)  # would fill it in the continuous session
    crossing = v.on_book(book([(70_000, 100)], [(70_100, 100)]), 3)
    done = v.on_phase(phase(MarketPhase.CLOSED), 4)

    assert through == [] and crossing == []
    # at the close: buy 10 @ 70,100 + 100 @ 70,000 vs sell 100 @ 70,100 -> 10 at 70,100
    assert r.order is not None and [(f.qty, f.price) for f in done.fills] == [(10, 70_100)]


# ------------------------------------------------------------------ VI and halts


def test_vi_when_symbol_interrupted_then_its_orders_wait_and_uncross_others_keep_trading() -> None:
    v = venue(holdings={SYM: 100})
    v.on_instrument(instrument(OTHER))
    v.on_book(book([(71_000, 500)], [(71_100, 500)]), 0)
    v.on_book(book([(71_000, 500)], [(71_100, 500)], symbol=OTHER), 0)
    v.on_trade(trade(71_100, 10), 0)  # the preceding price: 71,100
    v.on_phase(phase(MarketPhase.VI, symbol=SYM), 1)

    s = sell(v, 100, 70_900)  # would take the 71,000 bid at once in the continuous session
    other = buy(v, 10, 71_100, symbol=OTHER)
    v.on_book(book([(71_000, 500), (70_900, 300)], [(71_100, 500)]), 2)
    done = v.on_phase(phase(MarketPhase.CONTINUOUS, symbol=SYM), 3)

    assert s.order is not None and s.fills == []
    assert [(f.qty, f.price) for f in other.fills] == [(10, 71_100)]  # OTHER is not in VI
    # sells 100 @ 70,900 + 500 @ 71,100 vs buys 500 @ 71,000 + 300 @ 70,900: 100 execute at
    # 70,900 or 71,000, but at 70,900 the 500 bid at 71,000 would not all execute (rule 2)
    assert [(f.qty, f.price, f.ts_ns) for f in done.fills] == [(100, 71_000, 3)]
    assert v.phase_of(SYM) is MarketPhase.CONTINUOUS and v.last_price[SYM] == 71_000


def test_vi_when_it_ends_inside_the_closing_auction_then_symbol_waits_for_the_close() -> None:
    v = venue()
    v.on_book(book([], [(71_000, 100)]), 0)
    v.on_phase(phase(MarketPhase.VI, symbol=SYM), 1)
    r = buy(v, 10, 71_000)
    v.on_phase(phase(MarketPhase.CLOSING_AUCTION), 2)

    ended = v.on_phase(phase(MarketPhase.CONTINUOUS, symbol=SYM), 3)
    closed = v.on_phase(phase(MarketPhase.CLOSED), 4)

    assert ended.fills == [] and v.symbol_phase == {}
    assert r.order is not None and [(f.qty, f.price) for f in closed.fills] == [(10, 71_000)]


def test_halted_symbol_when_orders_sent_then_refused_cancels_work_and_no_uncross() -> None:
    v = venue()
    v.on_book(book([(70_000, 100)], [(70_200, 100)]), 0)
    kept = buy(v, 10, 69_900)
    gone = buy(v, 10, 69_800)
    v.on_phase(phase(MarketPhase.HALTED, symbol=SYM), 1)

    refused = buy(v, 1, 70_000)
    canceled = v.cancel(gone.order.order_no)  # type: ignore[union-attr]
    through = v.on_trade(trade(69_800, 50), 2)
    resumed = v.on_phase(phase(MarketPhase.CONTINUOUS, symbol=SYM), 3)

    assert refused.rejected is not None and refused.rejected.code == "HALTED"
    assert canceled is gone.order and through == [] and resumed.fills == []
    assert kept.order is not None and kept.order.status == OPEN


def test_market_halt_when_orders_sent_then_refused_for_every_symbol() -> None:
    v = venue()
    v.on_phase(phase(MarketPhase.HALTED))

    r = buy(v, 1, 70_000)

    assert r.rejected is not None and r.rejected.code == "HALTED"


def test_halted_symbol_when_it_reopens_with_its_own_auction_then_uncrosses_at_continuous() -> None:
    v = venue()
    v.on_phase(phase(MarketPhase.HALTED, symbol=SYM), 0)
    v.on_phase(phase(MarketPhase.PRE_OPEN, symbol=SYM), 1)  # the reopening single-price auction
    v.on_book(book([(70_900, 100)], [(71_000, 30)]), 2)
    r = buy(v, 50, 71_000)
    ioc = buy(v, 1, 71_000, tif=TimeInForce.IOC)

    done = v.on_phase(phase(MarketPhase.CONTINUOUS, symbol=SYM), 3)

    assert ioc.rejected is not None and ioc.rejected.code == "TIF_PHASE"
    # buys 50 @ 71,000 + 100 @ 70,900 vs 30 @ 71,000: 30 at 71,000
    assert r.order is not None and [(f.qty, f.price) for f in done.fills] == [(30, 71_000)]
    assert v.symbol_phase == {} and r.order.leaves == 20
