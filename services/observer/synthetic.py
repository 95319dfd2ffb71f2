"""A deterministic synthetic KRX market: random walk on real tick sizes, within the daily limits.

Every symbol keeps a best bid; the best ask is one tick above. A buy-aggressor trade prints at
the ask, a sell at the bid, and the bid walks one tick up or down now and then. A 10-level book
snapshot follows every `book_every` trades of a symbol and precedes every move of its price.
Events carry stream=0/seq=0: the engine stamps them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

from protocol.enums import InstrumentKind, Market, Side
from protocol.messages import Book, Instrument, Trade
from services.runtime import krx
from services.runtime.settings import SymbolSpec

LEVELS = 10


class _SymbolState:
    __slots__ = ("bid", "cum_volume", "kind", "lower", "spec", "trades", "upper")

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self.kind = InstrumentKind(spec.kind)
        self.lower, self.upper = krx.price_limits(spec.base_price, self.kind, Market(spec.market))
        self.bid = krx.round_to_tick(spec.base_price, self.kind)
        self.cum_volume = 0
        self.trades = 0

    @property
    def ask(self) -> int:
        return krx.ticks_away(self.bid, 1, self.kind)


class SyntheticSource:
    def __init__(
        self,
        symbols: list[SymbolSpec],
        seed: int,
        book_every: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not symbols:
            raise ValueError("observer.symbols is empty: the synthetic source needs symbols")
        self.rng = random.Random(seed)
        self.states = [_SymbolState(s) for s in symbols]
        self.book_every = book_every
        self.clock = clock

    def instruments(self) -> list[Instrument]:
        return [
            Instrument(
                stream=0,
                seq=0,
                symbol=st.spec.symbol,
                market=Market(st.spec.market),
                kind=st.kind,
                base_price=st.spec.base_price,
                upper_limit=st.upper,
                lower_limit=st.lower,
                name=st.spec.name,
            )
            for st in self.states
        ]

    def book(self, st: _SymbolState, now: int) -> Book:
        rng = self.rng
        bids, asks = [], []
        price = st.bid
        for _ in range(LEVELS):
            if price < st.lower:
                break
            bids.append((price, rng.randint(1, 50) * 100))
            price = krx.ticks_away(price, -1, st.kind)
        price = st.ask
        for _ in range(LEVELS):
            if price > st.upper:
                break
            asks.append((price, rng.randint(1, 50) * 100))
            price = krx.ticks_away(price, 1, st.kind)
        return Book(stream=0, seq=0, symbol=st.spec.symbol, exch_ns=now, bids=bids, asks=asks)

    def events(self) -> Iterator[Trade | Book]:
        """An endless stream: first a book per symbol, then trades and books."""
        rng = self.rng
        for st in self.states:
            yield self.book(st, self.clock())
        while True:
            st = self.states[rng.randrange(len(self.states))]
            now = self.clock()
            moved = False
            if rng.random() < 0.15:
                step = 1 if rng.random() < 0.5 else -1
                new_bid = krx.ticks_away(st.bid, step, st.kind)
                if st.lower <= new_bid and krx.ticks_away(new_bid, 1, st.kind) <= st.upper:
                    st.bid, moved = new_bid, True
            if moved:
                # the quote moves before anyone trades at it: receivers (the paper venue) see
                # the new book first, so every trade prints at the best price last published
                yield self.book(st, now)
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            price = st.ask if side is Side.BUY else st.bid
            qty = rng.choice((1, 1, 2, 3, 5, 10, 10, 20, 50, 100, 150, 300))
            st.cum_volume += qty
            st.trades += 1
            yield Trade(
                stream=0,
                seq=0,
                symbol=st.spec.symbol,
                exch_ns=now,
                price=price,
                qty=qty,
                aggressor=side,
                cum_volume=st.cum_volume,
            )
            if not moved and st.trades % self.book_every == 0:
                yield self.book(st, now)
