"""The external Observer protocol's codec: every message round-trips, framing splits a byte stream
however it arrives, endpoints parse or fail clearly."""

from __future__ import annotations

import msgspec
import pytest

from protocol.enums import MarketPhase, Side
from services.observer.sources import wire
from services.observer.sources.transport import parse_endpoint

FROM_OBSERVER = [
    wire.Welcome(version=1, feed_id="krx-a", session=5, seq=9, nonce=2, heartbeat_ms=500),
    wire.Reject(reason="no common protocol version", versions=[2], nonce=2),
    wire.Heartbeat(seq=9, session=5, ts_ns=1),
    wire.SnapshotBegin(request_id=3, seq=9),
    wire.SnapshotEnd(request_id=3, seq=9),
    wire.InstrumentInfo(seq=1, symbol="005930", base_price=71_000, name="Samsung"),
    wire.TradeTick(seq=2, symbol="005930", exch_ns=1, price=71_000, qty=1, aggressor=Side.SELL),
    wire.BookSnapshot(seq=3, symbol="005930", exch_ns=1, bids=[(70_900, 1)], asks=[(71_000, 2)]),
    wire.BookDelta(seq=4, symbol="005930", exch_ns=1, bids=[(70_900, 0)]),
    wire.Session(seq=5, exch_ns=1, phase=MarketPhase.CONTINUOUS, closes_ns=2),
    wire.SymbolStatus(seq=6, symbol="005930", exch_ns=1, phase=MarketPhase.HALTED),
]
FROM_QTS = [
    wire.Hello(versions=[1], nonce=1, symbols=["005930"]),
    wire.SnapshotRequest(request_id=1),
    wire.ClientHeartbeat(ts_ns=1),
]


@pytest.mark.parametrize("msg", FROM_OBSERVER, ids=lambda m: type(m).__name__)
def test_observer_message_round_trips(msg: msgspec.Struct) -> None:
    assert wire.observer_decoder().decode(wire.encode(msg)) == msg


@pytest.mark.parametrize("msg", FROM_QTS, ids=lambda m: type(m).__name__)
def test_qts_message_round_trips(msg: msgspec.Struct) -> None:
    assert wire.qts_decoder().decode(wire.encode(msg)) == msg


def test_a_qts_message_is_not_an_observer_message() -> None:
    with pytest.raises(msgspec.ValidationError):
        wire.observer_decoder().decode(wire.encode(wire.SnapshotRequest(request_id=1)))


def test_frames_split_anywhere_then_reassembled() -> None:
    stream = b"".join(wire.frame(m) for m in FROM_OBSERVER)
    reader = wire.FrameReader()
    got: list[bytes] = []
    for i in range(0, len(stream), 7):
        got += reader.feed(stream[i : i + 7])
    assert [wire.observer_decoder().decode(f) for f in got] == FROM_OBSERVER
    assert reader.pending == 0


def test_frame_length_above_limit_then_frame_error() -> None:
    reader = wire.FrameReader(max_frame=100)
    with pytest.raises(wire.FrameError, match="101"):
        reader.feed(wire.LEN.pack(101) + b"x")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [("unix:///run/obs.sock", ("unix", "/run/obs.sock")), ("ipc:///run/obs", ("ipc", "/run/obs"))],
)
def test_endpoint_parses(endpoint: str, expected: tuple[str, str]) -> None:
    assert parse_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["tcp://host:1", "unix://relative.sock", "stub"])
def test_bad_endpoint_then_clear_error(endpoint: str) -> None:
    with pytest.raises(ValueError, match="observer endpoint"):
        parse_endpoint(endpoint)
