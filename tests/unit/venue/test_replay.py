"""The checked-in sample session (tests/data/sample_session.qtsrec.gz) replayed through the
venue's matching in exchange time: the same recording and seed give the same orders and fills,
the sample is what tests/data/make_sample.py makes, and latency is applied in exchange time."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.enums import MarketPhase, OrderType, Side, TimeInForce
from protocol.messages import Book, Instrument, MarketData, PhaseChanged, Trade
from services.observer.replay import read_recording
from services.venue.matching import Venue
from services.venue.sim import RandomTrader, Request, Session, Tape, phases_in
from tests.data import make_sample
from tests.unit.venue.kit import BP, CASH, SYM, instrument

SAMPLE = Path(__file__).parents[2] / "data" / "sample_session.qtsrec.gz"
SEED = 1
RATE = 0.2  # orders per snapshot: enough to meet every phase of the sample
BIDS = [(69_900, 100)]


@pytest.fixture(scope="module")
def events() -> list[MarketData]:
    return list(read_recording(SAMPLE))


def run(events: list[MarketData], seed: int = SEED, latency_ns: int = 0) -> tuple[Tape, Venue]:
    session = Session(Venue(CASH, BP), latency_ns, latency_ns)
    trader = RandomTrader(seed, RATE)
    for event in events:
        session.feed(event)
        trader.on_event(event, session)
    return session.finish(), session.venue


def test_sample_when_read_then_small_one_day_with_every_phase(events: list[MarketData]) -> None:
    assert SAMPLE.stat().st_size < 1_000_000
    assert all(isinstance(e, Instrument) for e in events[:3])
    assert phases_in(events) == [
        ("", MarketPhase.PRE_OPEN),
        ("", MarketPhase.CONTINUOUS),
        (make_sample.VI_SYMBOL, MarketPhase.VI),
        (make_sample.VI_SYMBOL, MarketPhase.CONTINUOUS),
        ("", MarketPhase.CLOSING_AUCTION),
        ("", MarketPhase.CLOSED),
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # type: ignore[union-attr]
    times = [e.exch_ns for e in events if isinstance(e, Trade | Book | PhaseChanged)]
    assert times == sorted(times)


def test_sample_when_made_again_then_same_events(tmp_path: Path, events: list[MarketData]) -> None:
    out = tmp_path / "again.qtsrec.gz"
    assert make_sample.main(["--out", str(out)]) == 0

    assert list(read_recording(out)) == events


def test_replay_when_run_twice_with_same_seed_then_identical_orders_and_fills(
    events: list[MarketData],
) -> None:
    first, v1 = run(events)
    second, v2 = run(events)
    other, _ = run(events, seed=SEED + 1)

    assert first.orders and first.fills and first.closed
    assert (first.orders, first.fills, first.closed) == (second.orders, second.fills, second.closed)
    assert (v1.cash, v1.holdings) == (v2.cash, v2.holdings)
    assert (other.orders, other.fills) != (first.orders, first.fills)  # the seed matters


def test_replay_when_latency_set_then_same_twice_and_orders_meet_later_books(
    events: list[MarketData],
) -> None:
    second = 1_000_000_000
    slow, _ = run(events, latency_ns=second)
    again, _ = run(events, latency_ns=second)
    fast, _ = run(events)

    assert (slow.orders, slow.fills) == (again.orders, again.fills)
    assert slow.fills != fast.fills


def test_replay_when_sample_played_then_auctions_uncross_and_cash_adds_up(
    events: list[MarketData],
) -> None:
    tape, v = run(events)

    phase_at = {e.exch_ns: (e.symbol, e.phase) for e in events if isinstance(e, PhaseChanged)}
    uncrossed = {phase_at[f[6]] for f in tape.fills if f[6] in phase_at}
    # opening (09:00), the VI's end and the close each gave fills at one price per symbol
    assert {
        ("", MarketPhase.CONTINUOUS),
        (make_sample.VI_SYMBOL, MarketPhase.CONTINUOUS),
        ("", MarketPhase.CLOSED),
    } <= uncrossed
    for ts in (ts for ts, p in phase_at.items() if p[1] is not MarketPhase.VI):
        per_symbol: dict[str, set[int]] = {}
        for f in tape.fills:
            if f[6] == ts:
                per_symbol.setdefault(str(f[2]), set()).add(int(f[5]))  # type: ignore[call-overload]
        assert all(len(prices) == 1 for prices in per_symbol.values())
    # cash and holdings are exactly what the fills say
    cash, held = CASH, {}
    for _, _, symbol, side, qty, price, _, fee, tax in tape.fills:
        sign = 1 if side == Side.BUY.value else -1
        cash -= sign * qty * price + fee + tax  # type: ignore[operator]
        held[symbol] = held.get(symbol, 0) + sign * qty  # type: ignore[operator]
    assert v.cash == cash and {s: q for s, q in v.holdings.items() if q} == {
        s: q for s, q in held.items() if q
    }
    assert v.open == {}  # everything filled, cancelled or expired at the close


def test_session_when_latency_then_order_meets_the_book_after_it_arrives() -> None:
    s = Session(Venue(CASH, BP), order_latency_ns=100, cancel_latency_ns=50)
    s.feed(instrument())
    s.feed(Book(stream=1, seq=2, symbol=SYM, exch_ns=1_000, bids=BIDS, asks=[(70_000, 100)]))
    s.request(Request(SYM, Side.BUY, 10, 70_000, OrderType.LIMIT, TimeInForce.IOC))
    # the ask moves away 50 ns later, before the order (due at 1,100) reaches the engine
    s.feed(Book(stream=1, seq=3, symbol=SYM, exch_ns=1_050, bids=BIDS, asks=[(70_100, 100)]))
    s.feed(Trade(stream=1, seq=4, symbol=SYM, exch_ns=1_200, price=70_100, qty=1))
    tape = s.finish()

    assert tape.fills == []
    assert tape.orders[0][0] == 1_100  # applied at its arrival time
    assert [(c[1], c[4]) for c in tape.closed] == [("canceled", 1_100)]  # IOC remainder


def test_session_when_negative_latency_then_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        Session(Venue(CASH, BP), order_latency_ns=-1)
