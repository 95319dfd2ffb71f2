"""Matching: marketable orders walk displayed levels, resting orders queue behind displayed
size, trade-throughs, snapshots that cross, IOC/FOK/MARKET remainders."""

from __future__ import annotations

from protocol.enums import OrderType, Side, TimeInForce
from services.venue.matching import CANCELED, FILLED, OPEN
from tests.unit.venue.kit import SYM, book, buy, sell, trade, venue

ASKS = [(70_000, 10), (70_100, 20), (70_200, 50)]
BIDS = [(69_900, 1_000), (69_800, 500)]


def fills_of(result_fills: list) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    return [(f.qty, f.price) for f in result_fills]


def test_marketable_buy_when_limit_covers_two_levels_then_walks_them_at_level_prices() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 25, 70_100)

    assert r.order is not None and r.order.status == FILLED
    assert fills_of(r.fills) == [(10, 70_000), (15, 70_100)]
    assert [f.fill_no for f in r.fills] == [1, 2]
    assert [f.leaves for f in r.fills] == [15, 0]
    assert v.holdings[SYM] == 25


def test_marketable_buy_when_limit_below_third_level_then_rest_rests_at_limit() -> None:
    v = venue()
    v.on_book(book([(70_100, 300), *BIDS], ASKS), 0)

    r = buy(v, 40, 70_100)

    assert fills_of(r.fills) == [(10, 70_000), (20, 70_100)]
    assert r.order is not None and r.order.status == OPEN and r.order.leaves == 10
    assert r.order.queue_ahead == 300  # the displayed bid at 70,100 when it started resting


def test_marketable_sell_when_bids_shown_then_walks_down_to_limit() -> None:
    v = venue(holdings={SYM: 1_200})
    v.on_book(book(BIDS, ASKS), 0)

    r = sell(v, 1_200, 69_800)

    assert fills_of(r.fills) == [(1_000, 69_900), (200, 69_800)]
    assert v.holdings[SYM] == 0


def test_displayed_size_when_taken_by_one_order_then_not_available_to_the_next() -> None:
    v = venue()
    v.on_book(book(BIDS, [(70_000, 10)]), 0)
    first = buy(v, 10, 70_000)

    second = buy(v, 10, 70_000)

    assert fills_of(first.fills) == [(10, 70_000)]
    assert second.fills == []
    assert second.order is not None and second.order.status == OPEN


def test_taken_size_when_next_snapshot_arrives_then_crossing_resting_order_fills() -> None:
    v = venue()
    v.on_book(book(BIDS, [(70_000, 10)]), 0)
    buy(v, 10, 70_000)
    second = buy(v, 10, 70_000)

    fills = v.on_book(book(BIDS, [(70_000, 4), (70_100, 100)]), 0)

    assert fills_of(fills) == [(4, 70_000)]  # never above its limit
    assert second.order is not None and second.order.leaves == 6


def test_resting_buy_when_behind_1000_shares_then_fills_only_after_1000_traded_at_price() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)
    r = buy(v, 5, 69_900)
    assert r.order is not None and r.order.queue_ahead == 1_000

    assert v.on_trade(trade(69_900, 600), 0) == []
    assert v.on_trade(trade(69_900, 400), 0) == []
    assert r.order.queue_ahead == 0
    fills = v.on_trade(trade(69_900, 3), 0)

    assert fills_of(fills) == [(3, 69_900)]
    assert r.order.leaves == 2


def test_resting_buy_when_one_print_clears_its_queue_then_only_the_excess_fills_it() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)
    r = buy(v, 5, 69_900)

    fills = v.on_trade(trade(69_900, 1_002), 0)

    assert fills_of(fills) == [(2, 69_900)]
    assert r.order is not None and r.order.queue_ahead == 0


def test_two_resting_orders_at_one_price_when_print_arrives_then_time_priority_shares_it() -> None:
    v = venue()
    v.on_book(book([(69_900, 100)], ASKS), 1)
    a = buy(v, 50, 69_900, now=1)
    v.on_book(book([(69_900, 300)], ASKS), 2)
    b = buy(v, 50, 69_900, now=2)

    fills = v.on_trade(trade(69_900, 200), 3)

    # 100 displayed ahead of A trade, A takes 50, the other 50 were displayed shares ahead of B
    assert [(f.order.order_no, f.qty) for f in fills] == [(a.order.order_no, 50)]  # type: ignore[union-attr]
    assert b.order is not None and b.order.queue_ahead == 300 - 150


def test_resting_order_when_queue_model_off_then_first_print_at_price_fills() -> None:
    v = venue(queue_model=False)
    v.on_book(book(BIDS, ASKS), 0)
    r = buy(v, 5, 69_900)

    fills = v.on_trade(trade(69_900, 3), 0)

    assert fills_of(fills) == [(3, 69_900)]
    assert r.order is not None and r.order.queue_ahead == 0


def test_resting_buy_when_trade_prints_through_then_fills_at_its_limit_up_to_trade_qty() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)
    r = buy(v, 5, 69_900)

    fills = v.on_trade(trade(69_800, 3), 0)

    assert fills_of(fills) == [(3, 69_900)]
    assert r.order is not None and r.order.queue_ahead == 1_000  # a trade-through skips it


def test_resting_sell_when_trade_prints_above_then_fills_and_not_when_below() -> None:
    v = venue(holdings={SYM: 10})
    v.on_book(book(BIDS, ASKS), 0)
    r = sell(v, 10, 70_300)

    assert v.on_trade(trade(70_200, 50), 0) == []
    fills = v.on_trade(trade(70_400, 50), 0)

    assert fills_of(fills) == [(10, 70_300)]
    assert r.order is not None and r.order.status == FILLED


def test_print_when_smaller_than_two_through_orders_then_never_fills_more_than_its_size() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)
    buy(v, 5, 69_900, now=1)
    buy(v, 5, 69_900, now=2)

    fills = v.on_trade(trade(69_800, 7), 3)

    assert [f.qty for f in fills] == [5, 2]


def test_resting_sell_when_new_book_bid_crosses_then_fills_like_marketable() -> None:
    v = venue(holdings={SYM: 10})
    v.on_book(book(BIDS, ASKS), 0)
    r = sell(v, 10, 70_300)

    fills = v.on_book(book([(70_300, 4), (70_200, 100)], [(70_400, 10)]), 0)

    assert fills_of(fills) == [(4, 70_300)]
    assert r.order is not None and r.order.leaves == 6


def test_ioc_when_partly_marketable_then_remainder_canceled() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 15, 70_000, tif=TimeInForce.IOC)

    assert fills_of(r.fills) == [(10, 70_000)]
    assert r.order is not None and r.order.status == CANCELED and r.order.leaves == 5
    assert r.order.reason == "IOC remainder"
    assert v.open == {}


def test_fok_when_not_enough_within_limit_then_nothing_fills_and_nothing_is_taken() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 31, 70_100, tif=TimeInForce.FOK)
    after = buy(v, 30, 70_100, tif=TimeInForce.FOK)

    assert r.fills == [] and r.order is not None and r.order.status == CANCELED
    assert fills_of(after.fills) == [(10, 70_000), (20, 70_100)]
    assert after.order is not None and after.order.status == FILLED


def test_market_buy_when_book_too_thin_then_remainder_canceled_no_more_liquidity() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 100, 0, order_type=OrderType.MARKET)

    assert fills_of(r.fills) == [(10, 70_000), (20, 70_100), (50, 70_200)]
    assert r.order is not None and r.order.status == CANCELED and r.order.leaves == 20
    assert r.order.reason == "no more liquidity"


def test_market_sell_when_no_book_yet_then_canceled_unfilled() -> None:
    v = venue(holdings={SYM: 10})

    r = sell(v, 10, 0, order_type=OrderType.MARKET)

    assert r.fills == [] and r.order is not None and r.order.status == CANCELED
    assert v.sellable(SYM) == 10


def test_non_marketable_day_buy_when_submitted_then_rests_without_fill() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 5, 69_500)

    assert r.fills == [] and r.order is not None and r.order.status == OPEN
    assert r.order.queue_ahead == 0  # nothing displayed at 69,500
    assert v.open == {r.order.order_no: r.order}
    assert r.order.side is Side.BUY
