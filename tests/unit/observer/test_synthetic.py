"""The synthetic source: tick-valid, inside the daily limits, consistent books, deterministic."""

from __future__ import annotations

import itertools

from protocol.enums import InstrumentKind, Side
from protocol.messages import Book, Trade
from services.observer.synthetic import LEVELS, SyntheticSource
from services.runtime import krx
from services.runtime.settings import SymbolSpec

SYMBOLS = [
    SymbolSpec(symbol="005930", base_price=71_000),
    SymbolSpec(symbol="247540", base_price=15_230, market="KOSDAQ"),
    SymbolSpec(symbol="069500", base_price=1_995, kind="ETF"),
]
KINDS = {s.symbol: InstrumentKind(s.kind) for s in SYMBOLS}


def fixed_clock() -> int:
    return 1_700_000_000_000_000_000


def take(n: int, seed: int = 7, symbols: list[SymbolSpec] = SYMBOLS) -> list[Trade | Book]:
    src = SyntheticSource(symbols, seed, book_every=2, clock=fixed_clock)
    return list(itertools.islice(src.events(), n))


def test_trades_when_walking_then_on_tick_and_within_limits() -> None:
    src = SyntheticSource(SYMBOLS, 7, book_every=2, clock=fixed_clock)
    limits = {i.symbol: (i.lower_limit, i.upper_limit) for i in src.instruments()}

    trades = [e for e in itertools.islice(src.events(), 20_000) if isinstance(e, Trade)]

    assert len(trades) > 5_000
    for t in trades:
        lower, upper = limits[t.symbol]
        assert krx.on_tick(t.price, KINDS[t.symbol]), t
        assert lower <= t.price <= upper, t
        assert 1 <= t.qty <= 300
        assert t.aggressor in (Side.BUY, Side.SELL)
        assert (t.stream, t.seq) == (0, 0)  # the engine stamps


def test_walk_when_near_limit_then_stays_inside() -> None:
    # a tiny base price: 30% is a handful of ticks, so a long walk hits the limits often
    spec = SymbolSpec(symbol="000001", base_price=100)
    lower, upper = krx.price_limits(100)

    prices = [e.price for e in take(30_000, symbols=[spec]) if isinstance(e, Trade)]

    assert min(prices) >= lower and max(prices) <= upper
    assert len(set(prices)) > 3  # it does walk


def test_books_when_emitted_then_ten_levels_on_tick_and_uncrossed() -> None:
    books = [e for e in take(5_000) if isinstance(e, Book)]

    assert books
    for b in books:
        kind = KINDS[b.symbol]
        assert len(b.bids) == LEVELS and len(b.asks) == LEVELS
        assert b.bids[0][0] < b.asks[0][0]
        assert krx.ticks_away(b.bids[0][0], 1, kind) == b.asks[0][0]  # one-tick spread
        assert [p for p, _ in b.bids] == sorted((p for p, _ in b.bids), reverse=True)
        assert [p for p, _ in b.asks] == sorted(p for p, _ in b.asks)
        for price, qty in b.bids + b.asks:
            assert krx.on_tick(price, kind) and qty > 0


def test_trade_when_aggressor_then_at_best_price_of_latest_book() -> None:
    best: dict[str, tuple[int, int]] = {}
    checked = 0

    for e in take(5_000):
        if isinstance(e, Book):
            best[e.symbol] = (e.bids[0][0], e.asks[0][0])
        else:
            bid, ask = best[e.symbol]  # every symbol's book comes before its first trade
            checked += 1
            assert e.price == (ask if e.aggressor is Side.BUY else bid), e

    assert checked > 1_000


def test_cum_volume_when_trading_then_sums_quantities_per_symbol() -> None:
    totals: dict[str, int] = {}

    for e in take(3_000):
        if isinstance(e, Trade):
            totals[e.symbol] = totals.get(e.symbol, 0) + e.qty
            assert e.cum_volume == totals[e.symbol]


def test_events_when_same_seed_then_identical_and_other_seed_differs() -> None:
    assert take(2_000, seed=11) == take(2_000, seed=11)
    assert take(2_000, seed=11) != take(2_000, seed=12)
