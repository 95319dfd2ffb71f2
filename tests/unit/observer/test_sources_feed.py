"""The external feed's pure state: handshake, sequence (gaps, duplicates, snapshots), validation,
book deltas, staleness and the bad-frame flood report."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocol.enums import MarketPhase, Side
from protocol.messages import Book, Instrument, PhaseChanged, Trade
from services.observer.sources import wire
from services.observer.sources.feed import Feed, FeedConfig, FeedError, HandshakeError
from services.runtime import krx

SESSION = 77
enc = wire.encode


def live_feed(**cfg: Any) -> tuple[Feed, list[Any]]:
    """A feed past the handshake at seq 10, with 005930 known (limits from KRX rules)."""
    feed = Feed(FeedConfig(**cfg))
    feed.connected(0.0)
    out: list[Any] = []
    feed.handle(enc(welcome(seq=10)), 0.0, out)
    feed.handle(enc(wire.SnapshotBegin(request_id=1, seq=10)), 0.0, out)
    feed.handle(enc(instrument(seq=10)), 0.0, out)
    feed.handle(enc(book(10, bids=[(70_900, 5)], asks=[(71_000, 7)])), 0.0, out)
    feed.handle(enc(wire.SnapshotEnd(request_id=1, seq=10)), 0.0, out)
    feed.outbox.clear()
    return feed, out


def welcome(seq: int = 0, version: int = 1, session: int = SESSION, nonce: int = 1) -> Any:
    return wire.Welcome(version=version, feed_id="f", session=session, seq=seq, nonce=nonce)


def instrument(seq: int, symbol: str = "005930", base: int = 71_000) -> wire.InstrumentInfo:
    return wire.InstrumentInfo(seq=seq, symbol=symbol, base_price=base)


def trade(seq: int, price: int = 71_000, qty: int = 3, symbol: str = "005930") -> wire.TradeTick:
    return wire.TradeTick(
        seq=seq, symbol=symbol, exch_ns=seq, price=price, qty=qty, aggressor=Side.BUY
    )


def book(seq: int, bids: Any, asks: Any, delta: bool = False) -> Any:
    cls = wire.BookDelta if delta else wire.BookSnapshot
    return cls(seq=seq, symbol="005930", exch_ns=seq, bids=bids, asks=asks)


def feed_in(feed: Feed, *msgs: Any, now: float = 1.0) -> list[Any]:
    out: list[Any] = []
    for msg in msgs:
        feed.handle(msg if isinstance(msg, bytes) else enc(msg), now, out)
    return out


# ------------------------------------------------------------------------------ handshake


def test_connected_then_hello_with_our_versions_and_subscription() -> None:
    feed = Feed(FeedConfig(symbols=("005930",)))
    feed.connected(0.0)
    (hello,) = feed.outbox
    assert isinstance(hello, wire.Hello)
    assert hello.versions == list(wire.VERSIONS) and hello.symbols == ["005930"]
    assert feed.status.state == "handshake"


def test_welcome_then_live_and_snapshot_requested() -> None:
    feed = Feed(FeedConfig())
    feed.connected(0.0)
    feed.outbox.clear()
    feed_in(feed, welcome(seq=41))
    assert feed.status.state == "live" and feed.expected == 42
    assert [type(m) for m in feed.outbox] == [wire.SnapshotRequest]


def test_welcome_with_unknown_version_then_clear_handshake_error() -> None:
    feed = Feed(FeedConfig())
    feed.connected(0.0)
    with pytest.raises(HandshakeError, match=r"protocol version 9; QTS speaks \[1\]"):
        feed_in(feed, welcome(version=9))
    assert feed.status.state == "rejected"


def test_reject_then_handshake_error_names_both_sides_versions() -> None:
    feed = Feed(FeedConfig())
    feed.connected(0.0)
    reject = wire.Reject(reason="no common protocol version", versions=[2, 3], nonce=1)
    with pytest.raises(HandshakeError, match=r"speaks versions \[2, 3\], QTS speaks \[1\]"):
        feed_in(feed, reject)


def test_welcome_for_another_nonce_then_ignored() -> None:
    feed = Feed(FeedConfig())
    feed.connected(0.0)
    feed_in(feed, welcome(nonce=99))
    assert feed.status.state == "handshake"


def test_data_before_welcome_then_dropped_and_counted() -> None:
    feed = Feed(FeedConfig())
    feed.connected(0.0)
    assert feed_in(feed, instrument(1), trade(2)) == []
    assert feed.counters["before_welcome"] == 2


def test_reconnect_to_same_session_and_seq_then_resumed_without_snapshot() -> None:
    feed, _ = live_feed()
    feed_in(feed, trade(11))
    feed.disconnected("test")
    feed.connected(2.0)
    feed.outbox.clear()
    feed_in(feed, welcome(seq=11, nonce=2))
    assert feed.outbox == [] and feed.counters["gaps"] == 0


def test_reconnect_to_restarted_observer_then_gap_and_snapshot() -> None:
    feed, _ = live_feed()
    feed.disconnected("test")
    feed.connected(2.0)
    feed.outbox.clear()
    feed_in(feed, welcome(seq=3, session=SESSION + 1, nonce=2))
    assert feed.counters["gaps"] == 1
    assert [type(m) for m in feed.outbox] == [wire.SnapshotRequest]
    feed.tick(2.1, in_session=True)
    assert feed.stale_symbols() == ["005930"]


# ------------------------------------------------------------------------------ normal flow


def test_snapshot_and_trades_then_normalised_messages() -> None:
    feed, out = live_feed()
    inst, snap_book = out
    lower, upper = krx.price_limits(71_000)
    assert isinstance(inst, Instrument)
    assert (inst.lower_limit, inst.upper_limit) == (lower, upper)
    assert isinstance(snap_book, Book) and snap_book.bids == [(70_900, 5)]
    (tr,) = feed_in(feed, trade(11, price=71_000, qty=3))
    assert tr == Trade(
        stream=0, seq=0, symbol="005930", exch_ns=11, price=71_000, qty=3, aggressor=Side.BUY
    )


def test_book_delta_then_levels_changed_removed_and_added() -> None:
    feed, _ = live_feed()
    (b,) = feed_in(feed, book(11, bids=[(70_900, 0), (70_800, 4)], asks=[(71_000, 9)], delta=True))
    assert b.bids == [(70_800, 4)] and b.asks == [(71_000, 9)]
    (b,) = feed_in(feed, book(12, bids=[(70_900, 2)], asks=[(71_100, 1)], delta=True))
    assert b.bids == [(70_900, 2), (70_800, 4)] and b.asks == [(71_000, 9), (71_100, 1)]


def test_symbol_status_then_phase_changed_for_the_symbol() -> None:
    feed, _ = live_feed()
    status = wire.SymbolStatus(seq=11, symbol="005930", exch_ns=5, phase=MarketPhase.VI)
    (msg,) = feed_in(feed, status)
    assert msg == PhaseChanged(stream=0, seq=0, symbol="005930", exch_ns=5, phase=MarketPhase.VI)


def test_unsubscribed_symbol_then_dropped_and_counted() -> None:
    feed, _ = live_feed(symbols=("005930",))
    assert feed_in(feed, instrument(11, symbol="000660", base=182_000)) == []
    assert feed.counters["unsubscribed"] == 1


def test_trade_for_unknown_symbol_then_dropped_and_counted() -> None:
    feed, _ = live_feed()
    assert feed_in(feed, trade(11, symbol="000660", price=182_000)) == []
    assert feed.counters["unknown_symbol"] == 1


# ------------------------------------------------------------------------------ sequence


def test_duplicate_seq_then_dropped_and_counted() -> None:
    feed, _ = live_feed()
    feed_in(feed, trade(11))
    assert feed_in(feed, trade(11), trade(5)) == []
    assert feed.counters["duplicates"] == 2


def test_gap_then_counted_snapshot_requested_symbol_stale_until_snapshot() -> None:
    feed, _ = live_feed()
    out = feed_in(feed, trade(15))
    assert len(out) == 1  # a trade after a gap is still a true trade
    assert (feed.counters["gaps"], feed.counters["gap_messages"]) == (1, 4)
    (req,) = feed.outbox
    assert isinstance(req, wire.SnapshotRequest) and req.request_id == 2
    feed.tick(1.1, in_session=True)
    assert feed.stale_symbols() == ["005930"]
    # a second gap while the request is outstanding asks nothing more
    feed_in(feed, trade(20))
    assert len(feed.outbox) == 1
    feed_in(
        feed,
        wire.SnapshotBegin(request_id=2, seq=20),
        book(20, bids=[(70_900, 1)], asks=[(71_000, 1)]),
        wire.SnapshotEnd(request_id=2, seq=20),
    )
    feed.tick(1.2, in_session=True)
    assert feed.stale_symbols() == []
    assert len(feed_in(feed, trade(21))) == 1


def test_book_delta_after_gap_then_dropped_until_snapshot() -> None:
    feed, _ = live_feed()
    feed_in(feed, trade(13))  # gap: 11, 12 missing
    assert feed_in(feed, book(14, bids=[(70_900, 1)], asks=[], delta=True)) == []
    assert feed.counters["deltas_dropped"] == 1
    (b,) = feed_in(feed, book(15, bids=[(70_800, 1)], asks=[(71_000, 2)]))
    assert b.bids == [(70_800, 1)]
    assert len(feed_in(feed, book(16, bids=[(70_900, 1)], asks=[], delta=True))) == 1


def test_heartbeat_ahead_of_last_seq_then_tail_gap() -> None:
    feed, _ = live_feed()
    feed_in(feed, wire.Heartbeat(seq=12, session=SESSION, ts_ns=1))
    assert (feed.counters["gaps"], feed.counters["gap_messages"]) == (1, 2)
    assert feed.expected == 13


def test_heartbeat_from_another_session_then_feed_error() -> None:
    feed, _ = live_feed()
    with pytest.raises(FeedError, match="restarted"):
        feed_in(feed, wire.Heartbeat(seq=1, session=SESSION + 1, ts_ns=1))


def test_snapshot_unanswered_then_requested_again() -> None:
    feed, _ = live_feed(snapshot_timeout_s=1.0)
    feed_in(feed, trade(13), now=1.0)
    feed.outbox.clear()
    feed.tick(1.5, in_session=False)
    assert feed.outbox == []
    feed.tick(2.5, in_session=False)
    assert [type(m) for m in feed.outbox] == [wire.SnapshotRequest]
    assert feed.counters["snapshot_retries"] == 1


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "frame",
    [
        b"\xc1",  # not MessagePack
        b"\x93\x01\x02\x03",  # an array, not a message
        msgspec.msgpack.encode({"t": "trade", "seq": 11, "symbol": "005930"}),  # fields missing
        msgspec.msgpack.encode({"t": "nope", "seq": 11}),  # unknown tag
        enc(trade(11))[:-2],  # truncated
        msgspec.msgpack.encode(  # price must be > 0
            {"t": "trade", "seq": 11, "symbol": "005930", "exch_ns": 1, "price": -1, "qty": 1}
        ),
        msgspec.msgpack.encode(  # a symbol with a space
            {"t": "trade", "seq": 11, "symbol": "00 930", "exch_ns": 1, "price": 1, "qty": 1}
        ),
    ],
)
def test_malformed_frame_then_counted_dropped_and_stream_continues(frame: bytes) -> None:
    feed, _ = live_feed()
    assert feed_in(feed, frame) == []
    assert feed.counters["bad_frames"] == 1
    assert len(feed_in(feed, trade(11))) == 1


def test_trade_outside_daily_limits_then_bad_frame() -> None:
    feed, _ = live_feed()
    _, upper = krx.price_limits(71_000)
    assert feed_in(feed, trade(11, price=upper + 100)) == []
    assert feed.counters["bad_frames"] == 1


def test_book_out_of_order_or_zero_qty_then_bad_frame() -> None:
    feed, _ = live_feed()
    assert feed_in(feed, book(11, bids=[(70_800, 1), (70_900, 1)], asks=[])) == []
    assert feed_in(feed, book(12, bids=[(70_900, 0)], asks=[])) == []
    assert feed.counters["bad_frames"] == 2


def test_bad_frames_within_window_then_one_flood_report() -> None:
    feed, _ = live_feed(flood_frames=5, flood_window_s=1.0)
    for i in range(12):
        feed.handle(b"\xc1", 10.0 + i * 0.01, [])
    assert feed.counters["bad_frames"] == 12
    assert feed.counters["bad_frame_floods"] == 1  # reported once per window, not per frame


def test_bad_frames_spread_out_then_no_flood() -> None:
    feed, _ = live_feed(flood_frames=5, flood_window_s=1.0)
    for i in range(12):
        feed.handle(b"\xc1", 10.0 + i * 0.5, [])
    assert feed.counters["bad_frame_floods"] == 0


# ------------------------------------------------------------------------------ staleness


def test_symbol_silent_in_session_then_stale_and_fresh_on_next_trade() -> None:
    feed, _ = live_feed(stale_after_s=1.0)
    feed_in(feed, trade(11), now=1.0)
    feed.tick(1.9, in_session=True)
    assert feed.stale_symbols() == []
    feed.tick(2.1, in_session=True)
    assert feed.stale_symbols() == ["005930"] and feed.counters["stale_marks"] == 1
    feed_in(feed, trade(12), now=2.2)
    feed.tick(2.3, in_session=True)
    assert feed.stale_symbols() == []


def test_symbol_silent_out_of_session_or_in_vi_then_not_stale() -> None:
    feed, _ = live_feed(stale_after_s=1.0)
    feed.tick(5.0, in_session=False)
    assert feed.stale_symbols() == []
    feed_in(feed, wire.SymbolStatus(seq=11, symbol="005930", exch_ns=1, phase=MarketPhase.VI))
    feed.tick(9.0, in_session=True)
    assert feed.stale_symbols() == []


def test_feed_disconnected_then_every_symbol_stale() -> None:
    feed, _ = live_feed()
    feed.disconnected("gone")
    feed.tick(0.1, in_session=False)
    assert feed.stale_symbols() == ["005930"]


def test_data_after_disconnect_before_new_welcome_then_not_applied() -> None:
    feed, _ = live_feed()
    feed.disconnected("gone")
    feed.connected(2.0)
    assert feed_in(feed, trade(11)) == []
    assert feed.counters["before_welcome"] == 1
