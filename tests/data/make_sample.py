"""Make tests/data/sample_session.qtsrec.gz: one synthetic KRX day with its session phases.

    .venv/bin/python -m tests.data.make_sample [--out PATH]

The project's synthetic source (services/observer/synthetic.py, fixed seed, a clock that walks
exchange time) written by the observer's recorder (services/observer/replay.write_recording),
with the PhaseChanged events the synthetic source does not make:
- 08:30 PRE_OPEN: order-book snapshots only (the opening call auction), 09:00 CONTINUOUS;
- 10:30 a VI on 005930: two minutes of its snapshots only, then CONTINUOUS for 005930;
- 15:20 CLOSING_AUCTION: snapshots only; 15:30 CLOSED.
Every message carries stream 1 and the next seq, as the observer's engine stamps them. The
output depends on nothing but this file and the synthetic source: rerunning it gives the same
events (only the header's created_ns differs).
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec

from protocol.enums import MarketPhase
from protocol.messages import Book, MarketData, PhaseChanged, Trade
from services.observer.replay import write_recording
from services.observer.synthetic import SyntheticSource
from services.runtime.settings import SymbolSpec

OUT = Path(__file__).with_name("sample_session.qtsrec.gz")
DAY = dt.date(2026, 11, 20)  # a Friday: no CSAT shift, no year-end
SEED = 20261120
VI_SYMBOL = "005930"
SYMBOLS = [
    SymbolSpec(symbol="005930", base_price=71_000, name="Samsung Electronics"),
    SymbolSpec(symbol="000660", base_price=182_000, name="SK hynix"),
    SymbolSpec(symbol="247540", base_price=15_230, name="Ecopro BM", market="KOSDAQ"),
]
CONTINUOUS_EVENTS = 3_000  # trades and books from 09:00 to 15:20
AUCTION_BOOKS = 30  # snapshots in each call auction
KST = ZoneInfo("Asia/Seoul")


def at(hh: int, mm: int, ss: float = 0.0) -> int:
    t = dt.datetime.combine(DAY, dt.time(hh, mm), tzinfo=KST)
    return int(t.timestamp() * 1e9) + int(ss * 1e9)


class Clock:
    def __init__(self) -> None:
        self.now = at(8, 29)

    def __call__(self) -> int:
        return self.now


def session() -> Iterator[MarketData]:
    clock = Clock()
    source = SyntheticSource(SYMBOLS, SEED, book_every=2, clock=clock)
    market = source.events()

    def phase(symbol: str, p: MarketPhase) -> PhaseChanged:
        return PhaseChanged(stream=0, seq=0, symbol=symbol, exch_ns=clock.now, phase=p)

    def auction_books(start: int, end: int, symbols: list[str]) -> Iterator[Book]:
        # snapshots of the auction's book; the synthetic walk goes on underneath, unprinted
        states = [st for st in source.states if st.spec.symbol in symbols]
        for i in range(AUCTION_BOOKS):
            clock.now = start + (end - start) * i // AUCTION_BOOKS
            st = states[i % len(states)]
            yield source.book(st, clock.now)

    yield from source.instruments()
    clock.now = at(8, 30)
    yield phase("", MarketPhase.PRE_OPEN)
    everyone = [s.symbol for s in SYMBOLS]
    yield from auction_books(at(8, 30), at(9, 0), everyone)
    clock.now = at(9, 0)
    yield phase("", MarketPhase.CONTINUOUS)

    start, end = at(9, 0, 0.5), at(15, 19, 59)
    vi_start, vi_end = at(10, 30), at(10, 32)
    in_vi = False
    for i in range(CONTINUOUS_EVENTS):
        clock.now = start + (end - start) * i // CONTINUOUS_EVENTS
        event = next(market)
        # the source stamps an event with the clock of the step that made it: decide the VI by
        # the event's own time, so the stream's times never go backwards
        if not in_vi and vi_start <= event.exch_ns < vi_end:
            in_vi = True
            yield PhaseChanged(
                stream=0, seq=0, symbol=VI_SYMBOL, exch_ns=vi_start, phase=MarketPhase.VI
            )
        elif in_vi and event.exch_ns >= vi_end:
            in_vi = False
            yield PhaseChanged(
                stream=0, seq=0, symbol=VI_SYMBOL, exch_ns=vi_end, phase=MarketPhase.CONTINUOUS
            )
        if in_vi and event.symbol == VI_SYMBOL and isinstance(event, Trade):
            continue  # no continuous trading in a VI: the symbol's prints stop
        yield event

    clock.now = at(15, 20)
    yield phase("", MarketPhase.CLOSING_AUCTION)
    yield from auction_books(at(15, 20), at(15, 30), everyone)
    clock.now = at(15, 30)
    yield phase("", MarketPhase.CLOSED)


def stamped() -> Iterator[MarketData]:
    for seq, event in enumerate(session(), 1):
        yield msgspec.structs.replace(event, stream=1, seq=seq)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.data.make_sample")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    n = write_recording(args.out, stamped())
    print(f"wrote {n} frames, {args.out.stat().st_size:,} bytes to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
