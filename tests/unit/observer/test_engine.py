"""The engine: stream/seq stamping, trace, duplicate drop, per-symbol stats, end of stream."""

from __future__ import annotations

from protocol.enums import Side
from protocol.messages import Book, Instrument, Trade
from services.observer.engine import ObserverEngine

STREAM = 1_700_000_000_000_000_000


def trade(
    symbol: str = "005930", exch_ns: int = 1, price: int = 71_000, qty: int = 10, cum: int = 10
) -> Trade:
    return Trade(stream=0, seq=0, symbol=symbol, exch_ns=exch_ns, price=price, qty=qty,
                 aggressor=Side.BUY, cum_volume=cum)  # fmt: skip


def book(symbol: str = "005930") -> Book:
    return Book(stream=0, seq=0, symbol=symbol, exch_ns=1, bids=[(70_900, 5)],
                asks=[(71_000, 5)])  # fmt: skip


def test_stamp_when_mixed_symbols_then_seq_counts_up_by_one_per_stream() -> None:
    engine = ObserverEngine(stream=STREAM)
    inst = Instrument(stream=0, seq=0, symbol="005930", base_price=71_000, upper_limit=92_300,
                      lower_limit=49_700)  # fmt: skip

    out = [
        engine.stamp(inst, 10),
        engine.stamp(trade("005930", 1), 11),
        engine.stamp(book("000660"), 12),
        engine.stamp(trade("000660", 2, cum=10), 13),
    ]
    eos = engine.end()

    assert [m.seq for m in out] + [eos.seq] == [1, 2, 3, 4, 5]
    assert all(m.stream == STREAM for m in out) and eos.stream == STREAM
    assert out[1].trace.observed == 11 and out[2].trace.observed == 12
    assert eos.events == 3  # trades and books, not instruments


def test_stamp_when_trade_repeated_then_dropped_and_counted() -> None:
    engine = ObserverEngine(stream=STREAM)
    first = engine.stamp(trade(exch_ns=5), 1)

    again = engine.stamp(trade(exch_ns=5), 2)
    next_one = engine.stamp(trade(exch_ns=6, cum=20), 3)

    assert first is not None and again is None
    assert engine.duplicates == 1
    assert next_one is not None and next_one.seq == 2  # no gap for the dropped one


def test_stamp_when_same_print_with_new_cum_volume_then_kept() -> None:
    # two genuine trades in the same nanosecond at the same price and size
    engine = ObserverEngine(stream=STREAM)
    engine.stamp(trade(exch_ns=5, cum=10), 1)

    second = engine.stamp(trade(exch_ns=5, cum=20), 2)

    assert second is not None and engine.duplicates == 0


def test_stats_when_events_then_per_symbol_price_count_and_age() -> None:
    engine = ObserverEngine(stream=STREAM)
    engine.stamp(trade("005930", 1, price=71_100), 1_000_000_000)
    engine.stamp(trade("005930", 2, price=71_200, cum=20), 2_000_000_000)

    stats = engine.stats(now_mono=2.5)

    sym = stats["per_symbol"]["005930"]
    assert (sym["last_price"], sym["events"], sym["age_ms"]) == (71_200, 2, 500.0)
    assert (stats["events"], stats["seq"], stats["stream"]) == (2, 2, STREAM)
