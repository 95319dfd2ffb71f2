"""The venue's SQLite books: a new account, and everything back after a restart."""

from __future__ import annotations

from pathlib import Path

from protocol.enums import MarketPhase, Side
from services.venue.matching import Venue
from services.venue.store import VenueStore
from tests.unit.venue.kit import (
    BP,
    CASH,
    NOW,
    SYM,
    book,
    buy,
    instrument,
    phase,
    sell,
    trade,
    venue,
)


def save(store: VenueStore, v: Venue, orders: list, fills: list, seq: int = 0) -> None:  # type: ignore[type-arg]
    store.commit(
        cash=v.cash,
        holdings=v.holdings,
        next_no=v.next_no,
        notice_seq=seq,
        orders=orders,
        fills=fills,
    )


def test_new_store_when_first_created_then_account_holds_initial_cash(tmp_path: Path) -> None:
    store = VenueStore(tmp_path / "venue.db")

    loaded = store.load(CASH)

    assert (loaded.cash, loaded.holdings, loaded.next_no, loaded.notice_seq) == (CASH, {}, 1, 0)
    assert loaded.open_orders == []
    assert store.load(5).cash == CASH  # the deposit is made once, not on every start


def test_open_order_when_store_reopened_then_it_is_back_and_keeps_resting(tmp_path: Path) -> None:
    path = tmp_path / "venue.db"
    v = venue()
    v.on_book(book([(69_900, 1_000)], [(70_000, 10)]), 0)
    filled = buy(v, 10, 70_000)  # fills 10 at once
    resting = buy(v, 5, 69_900)  # rests behind 1,000
    store = VenueStore(path)
    store.load(CASH)
    save(store, v, [filled.order, resting.order], filled.fills, seq=7)
    store.close()

    again = VenueStore(path)
    loaded = again.load(CASH)
    restored = Venue(0, BP)
    restored.restore(loaded.cash, loaded.holdings, loaded.next_no, loaded.open_orders)

    assert loaded.cash == v.cash and loaded.holdings == {SYM: 10}
    assert loaded.next_no == 3 and loaded.notice_seq == 7
    [order] = loaded.open_orders
    assert (order.order_no, order.side, order.qty, order.price) == (
        "0000000002",
        Side.BUY,
        5,
        69_900,
    )
    assert order.queue_ahead == 1_000
    restored.on_instrument(instrument())
    fills = restored.on_trade(trade(69_900, 1_002), NOW)
    assert [(f.qty, f.price) for f in fills] == [(2, 69_900)]
    assert (
        restored.submit(SYM, Side.BUY, 1, 60_000, order.order_type, order.tif, NOW).order.order_no
        == "0000000003"
    )  # type: ignore[union-attr]


def test_fills_and_orders_when_queried_then_today_only_with_open_orders_kept(
    tmp_path: Path,
) -> None:
    store = VenueStore(tmp_path / "venue.db")
    store.load(CASH)
    v = venue(holdings={SYM: 10})
    v.on_book(book([(70_000, 100)], [(70_100, 100)]), 0)
    old_open = buy(v, 1, 60_000, now=NOW - 86_400 * 10**9)
    old_done = sell(v, 10, 70_000, now=NOW - 86_400 * 10**9)
    today = buy(v, 1, 60_000, now=NOW)
    save(store, v, [old_open.order, old_done.order, today.order], old_done.fills)

    orders = store.orders(since_ns=NOW - 3_600 * 10**9)
    fills = store.fills(since_ns=NOW - 3_600 * 10**9)

    assert [o.order_no for o in orders] == [old_open.order.order_no, today.order.order_no]  # type: ignore[union-attr]
    assert fills == []
    [f] = store.fills()
    assert (f.order_no, f.fill_no, f.qty, f.price, f.commission, f.tax) == (
        old_done.order.order_no,
        1,
        10,
        70_000,
        105,
        1_050,  # type: ignore[union-attr]
    )
    assert [o.order_no for o in store.orders(open_only=True)] == [
        old_open.order.order_no,
        today.order.order_no,  # type: ignore[union-attr]
    ]
    assert store.order_status(old_done.order.order_no) == "filled"  # type: ignore[union-attr]
    assert store.order_status("0000009999") is None


def test_instrument_when_saved_then_loaded_after_reopen_latest_wins(tmp_path: Path) -> None:
    path = tmp_path / "venue.db"
    store = VenueStore(path)
    store.save_instrument(instrument(base=71_000))
    store.save_instrument(instrument(base=72_000))
    store.save_instrument(instrument("000660", base=182_000))
    store.close()

    loaded = VenueStore(path).load(CASH)

    by_symbol = {i.symbol: i for i in loaded.instruments}
    assert by_symbol[SYM] == instrument(base=72_000)
    assert set(by_symbol) == {SYM, "000660"}


def test_auction_when_venue_restarts_inside_it_then_orders_still_collect_then_uncross(
    tmp_path: Path,
) -> None:
    path = tmp_path / "venue.db"
    store = VenueStore(path)
    store.load(CASH)
    v = venue()
    v.on_phase(phase(MarketPhase.PRE_OPEN))
    v.on_phase(phase(MarketPhase.HALTED, symbol="000660"))
    r = buy(v, 10, 71_000)
    save(store, v, [r.order], [])
    store.save_phases(v.phases())
    store.close()

    store = VenueStore(path)
    loaded = store.load(CASH)
    store.close()
    restored = Venue(loaded.cash, BP)
    restored.restore(
        loaded.cash, loaded.holdings, loaded.next_no, loaded.open_orders, loaded.phases
    )
    restored.on_instrument(instrument())
    restored.on_book(book([], [(71_000, 4)]), 0)  # crosses it: no fill in an auction

    done = restored.on_phase(phase(MarketPhase.CONTINUOUS), 1)

    assert loaded.phases == {"": MarketPhase.PRE_OPEN, "000660": MarketPhase.HALTED}
    assert restored.phase_of("000660") is MarketPhase.HALTED
    assert [(f.qty, f.price) for f in done.fills] == [(4, 71_000)]


def test_phases_when_committed_with_a_change_then_replace_the_old_ones(tmp_path: Path) -> None:
    store = VenueStore(tmp_path / "venue.db")
    store.load(CASH)
    v = venue()
    store.save_phases({"": MarketPhase.CONTINUOUS, SYM: MarketPhase.VI})

    store.commit(
        cash=v.cash,
        holdings={},
        next_no=1,
        notice_seq=0,
        orders=[],
        fills=[],
        phases={"": MarketPhase.CLOSED},
    )

    assert store.load(CASH).phases == {"": MarketPhase.CLOSED}
    store.close()
