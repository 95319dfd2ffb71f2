"""Order types in the continuous session: best (최유리), priority (최우선), conditional
(조건부지정가), and the type/condition pairs KRX does not have (krx.md section 4)."""

from __future__ import annotations

import pytest

from protocol.enums import MarketPhase, OrderType, TimeInForce
from services.venue.matching import CANCELED, OPEN
from tests.unit.venue.kit import SYM, book, buy, fee, instrument, phase, sell, trade, venue

ASKS = [(70_000, 10), (70_100, 20)]
BIDS = [(69_900, 1_000), (69_800, 500)]


def test_best_buy_when_sent_then_priced_at_best_ask_fills_there_and_rest_rests() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 25, 0, OrderType.BEST)

    # priced at 70,000 (the best ask): never walks to 70,100 like a market order would
    assert r.order is not None and r.order.price == 70_000
    assert [(f.qty, f.price) for f in r.fills] == [(10, 70_000)]
    assert r.order.status == OPEN and r.order.leaves == 15 and r.order.queue_ahead == 0
    assert v.reserved_cash() == 15 * 70_000 + fee(15 * 70_000)


def test_best_sell_when_sent_then_priced_at_best_bid() -> None:
    v = venue(holdings={SYM: 1_200})
    v.on_book(book(BIDS, ASKS), 0)

    r = sell(v, 1_200, 0, OrderType.BEST)

    assert r.order is not None and r.order.price == 69_900
    assert [(f.qty, f.price) for f in r.fills] == [(1_000, 69_900)]
    assert r.order.leaves == 200


def test_best_ioc_and_fok_when_best_level_too_small_then_remainder_or_all_canceled() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    ioc = buy(v, 25, 0, OrderType.BEST, TimeInForce.IOC)
    v.on_book(book(BIDS, ASKS), 1)
    fok = buy(v, 25, 0, OrderType.BEST, TimeInForce.FOK)

    assert ioc.order is not None and [(f.qty, f.price) for f in ioc.fills] == [(10, 70_000)]
    assert ioc.order.status == CANCELED and ioc.order.leaves == 15
    assert fok.order is not None and fok.fills == [] and fok.order.status == CANCELED


def test_priority_buy_when_sent_then_joins_best_bid_behind_its_queue() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 5, 0, OrderType.PRIORITY)
    ahead = v.on_trade(trade(69_900, 1_000), 1)
    mine = v.on_trade(trade(69_900, 7), 2)

    assert r.order is not None and r.order.price == 69_900 and r.fills == []
    assert ahead == [] and [(f.qty, f.price) for f in mine] == [(5, 69_900)]


def test_priority_sell_when_sent_then_joins_best_ask() -> None:
    v = venue(holdings={SYM: 3})
    v.on_book(book(BIDS, ASKS), 0)

    r = sell(v, 3, 0, OrderType.PRIORITY)

    assert r.order is not None and r.order.price == 70_000 and r.order.queue_ahead == 10


@pytest.mark.parametrize(
    ("order_type", "bids", "asks"),
    [(OrderType.BEST, BIDS, []), (OrderType.PRIORITY, [], ASKS)],
)
def test_venue_priced_order_when_no_quote_to_price_it_then_no_quote(
    order_type: OrderType, bids: list[tuple[int, int]], asks: list[tuple[int, int]]
) -> None:
    v = venue()
    v.on_book(book(bids, asks), 0)

    r = buy(v, 1, 0, order_type)

    assert r.rejected is not None and r.rejected.code == "NO_QUOTE" and v.next_no == 1


@pytest.mark.parametrize(
    ("order_type", "tif", "price"),
    [
        (OrderType.BEST, TimeInForce.DAY, 70_000),  # the venue sets the price
        (OrderType.PRIORITY, TimeInForce.DAY, 69_900),
        (OrderType.PRIORITY, TimeInForce.IOC, 0),  # no priority IOC/FOK at KRX
        (OrderType.PRIORITY, TimeInForce.FOK, 0),
        (OrderType.CONDITIONAL, TimeInForce.IOC, 70_000),
        (OrderType.CONDITIONAL, TimeInForce.FOK, 70_000),
        (OrderType.CONDITIONAL, TimeInForce.DAY, 0),  # a conditional order has a limit
        (OrderType.CONDITIONAL, TimeInForce.DAY, 70_050),  # off tick
    ],
)
def test_order_when_type_condition_or_price_is_wrong_then_refused(
    order_type: OrderType, tif: TimeInForce, price: int
) -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 1, price, order_type, tif)

    assert r.rejected is not None and r.rejected.code in ("BAD_ORDER", "TICK_SIZE")
    assert order_type.value in r.rejected.message or r.rejected.code == "TICK_SIZE"
    assert v.next_no == 1


def test_conditional_when_continuous_then_a_limit_order_until_the_closing_auction() -> None:
    v = venue()
    v.on_book(book(BIDS, ASKS), 0)

    r = buy(v, 15, 70_000, OrderType.CONDITIONAL)

    assert r.order is not None and [(f.qty, f.price) for f in r.fills] == [(10, 70_000)]
    assert r.order.status == OPEN and v.reserved_cash() == 5 * 70_000 + fee(5 * 70_000)
    v.on_phase(phase(MarketPhase.CLOSING_AUCTION), 1)
    upper = instrument().upper_limit
    # now a market order in the auction: it may pay up to the upper limit
    assert v.reserved_cash() == 5 * upper + fee(5 * upper)
