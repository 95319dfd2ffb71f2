"""The external Observer protocol, version 1 (docs/observer_integration.md is its specification).

These types are the contract with a third-party process, not a QTS internal socket, so they live
with the sources that speak them rather than in protocol/ (whose types are QTS's own). The
same rules hold: frozen, kw-only, tagged Structs; new fields only at the end with defaults; a
tag is never reused. Every frame is validated by a typed decoder: constraints (Meta) reject a
non-positive price, an empty symbol or a negative sequence before any of our code sees them.

Transports: a Unix stream socket carries each frame after its length as 4 bytes big-endian;
ZeroMQ carries one message per frame. The bytes of a message are the same on both.
"""

from __future__ import annotations

import struct
from typing import Annotated

import msgspec

from protocol.enums import InstrumentKind, Market, MarketPhase, Side

VERSION = 1
VERSIONS = (1,)  # every version this QTS speaks, newest last
MAX_FRAME = 1 << 20  # bytes; a length prefix above this is corruption, not a message

LEN = struct.Struct(">I")

Symbol = Annotated[str, msgspec.Meta(min_length=1, max_length=12, pattern=r"^[0-9A-Za-z]+$")]
Price = Annotated[int, msgspec.Meta(gt=0)]
Qty = Annotated[int, msgspec.Meta(gt=0)]
Seq = Annotated[int, msgspec.Meta(ge=0)]
Ns = Annotated[int, msgspec.Meta(ge=0)]
Levels = Annotated[list[tuple[Price, Qty]], msgspec.Meta(max_length=50)]  # (price, qty > 0)
Changes = Annotated[  # (price, new qty); qty 0 removes the level
    list[tuple[Price, Annotated[int, msgspec.Meta(ge=0)]]], msgspec.Meta(max_length=50)
]


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="t", gc=False):
    pass


# --------------------------------------------------------------------------- QTS -> Observer


class Hello(_Msg, tag="hello", frozen=True, kw_only=True):
    """QTS's first frame on a connection (on ZeroMQ: repeated until answered). `versions`:
    every protocol version QTS speaks; `symbols`: the subscription (empty = everything);
    `nonce` identifies this connection attempt in the answer (ZeroMQ answers go to every
    subscriber; a Welcome whose `nonce` is not ours is ignored)."""

    versions: list[int]
    client: str = "qts"
    nonce: int = 0
    symbols: list[Symbol] = []


class SnapshotRequest(_Msg, tag="snapshot_request", frozen=True, kw_only=True):
    """QTS lost messages (a gap in `seq`, or a reconnect): send the current state of `symbols`
    (empty = all subscribed) between SnapshotBegin and SnapshotEnd with the same request_id."""

    request_id: int
    symbols: list[Symbol] = []


class ClientHeartbeat(_Msg, tag="client_heartbeat", frozen=True, kw_only=True):
    """QTS is alive (every heartbeat period). An Observer may drop a client silent for long."""

    ts_ns: Ns


# --------------------------------------------------------------------------- Observer -> QTS


class Welcome(_Msg, tag="welcome", frozen=True, kw_only=True):
    """The Observer accepts Hello: the version it will speak (one of Hello.versions), its feed's
    name, `session` (a number that changes whenever the Observer restarts, so its `seq` restarts)
    and `seq`, the last sequence number it sent (the next data message carries seq + 1)."""

    version: int
    feed_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    session: int
    seq: Seq
    nonce: int = 0
    heartbeat_ms: Annotated[int, msgspec.Meta(gt=0)] = 1000


class Reject(_Msg, tag="reject", frozen=True, kw_only=True):
    """The Observer refuses Hello (no common version, unknown symbol, ...); it then closes."""

    reason: str
    versions: list[int] = []
    nonce: int = 0


class Heartbeat(_Msg, tag="heartbeat", frozen=True, kw_only=True):
    """Sent at least every Welcome.heartbeat_ms when nothing else is: `seq` is the last data
    sequence number sent, so a lost tail is a gap too; `session` as in Welcome."""

    seq: Seq
    session: int
    ts_ns: Ns


class InstrumentInfo(_Msg, tag="instrument", frozen=True, kw_only=True):
    """Reference data; before any trade or book of the symbol, and in every snapshot. Limits of 0
    are computed by QTS from base_price (KRX rules, services/runtime/krx.py)."""

    seq: Seq
    symbol: Symbol
    base_price: Price
    market: Market = Market.KOSPI
    kind: InstrumentKind = InstrumentKind.STOCK
    upper_limit: Annotated[int, msgspec.Meta(ge=0)] = 0
    lower_limit: Annotated[int, msgspec.Meta(ge=0)] = 0
    name: str = ""


class TradeTick(_Msg, tag="trade", frozen=True, kw_only=True):
    seq: Seq
    symbol: Symbol
    exch_ns: Ns
    price: Price
    qty: Qty
    aggressor: Side | None = None
    cum_volume: Annotated[int, msgspec.Meta(ge=0)] = 0


class BookSnapshot(_Msg, tag="book", frozen=True, kw_only=True):
    """The whole visible book: bids best (highest) first, asks best (lowest) first, qty > 0."""

    seq: Seq
    symbol: Symbol
    exch_ns: Ns
    bids: Levels
    asks: Levels


class BookDelta(_Msg, tag="book_delta", frozen=True, kw_only=True):
    """Changed levels since the previous book message of the symbol: (price, new qty), qty 0
    removes the level. Only valid on top of an unbroken sequence since the last BookSnapshot."""

    seq: Seq
    symbol: Symbol
    exch_ns: Ns
    bids: Changes = []
    asks: Changes = []


class Session(_Msg, tag="session", frozen=True, kw_only=True):
    """The market-wide phase changed (PRE_OPEN, CONTINUOUS, CLOSING_AUCTION, CLOSED)."""

    seq: Seq
    exch_ns: Ns
    phase: MarketPhase
    closes_ns: Ns = 0


class SymbolStatus(_Msg, tag="status", frozen=True, kw_only=True):
    """One symbol entered a VI (MarketPhase.VI), a halt (HALTED) or resumed (CONTINUOUS)."""

    seq: Seq
    symbol: Symbol
    exch_ns: Ns
    phase: MarketPhase


class SnapshotBegin(_Msg, tag="snapshot_begin", frozen=True, kw_only=True):
    """Start of the answer to SnapshotRequest `request_id` (0: the Observer's own, after
    Welcome). The messages up to SnapshotEnd carry seq == this seq: the state as of it."""

    request_id: int
    seq: Seq


class SnapshotEnd(_Msg, tag="snapshot_end", frozen=True, kw_only=True):
    request_id: int
    seq: Seq


Data = InstrumentInfo | TradeTick | BookSnapshot | BookDelta | Session | SymbolStatus
FromObserver = Welcome | Reject | Heartbeat | SnapshotBegin | SnapshotEnd | Data
FromQts = Hello | SnapshotRequest | ClientHeartbeat

encode = msgspec.msgpack.Encoder().encode
DecodeError = (msgspec.DecodeError, msgspec.ValidationError)


def observer_decoder() -> msgspec.msgpack.Decoder[FromObserver]:
    return msgspec.msgpack.Decoder(FromObserver)


def qts_decoder() -> msgspec.msgpack.Decoder[FromQts]:
    return msgspec.msgpack.Decoder(FromQts)


def frame(msg: msgspec.Struct) -> bytes:
    """One message with its length prefix, for the Unix socket."""
    body = encode(msg)
    return LEN.pack(len(body)) + body


class FrameError(Exception):
    """The byte stream cannot be split into frames any more (a length above MAX_FRAME)."""


class FrameReader:
    """Splits a byte stream into length-prefixed frames; keeps a partial frame between feeds."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        if self.buf:  # a partial frame from the last read: join once, then parse as bytes
            self.buf += data
            data = bytes(self.buf)
            self.buf.clear()
        out: list[bytes] = []
        unpack, max_frame = LEN.unpack_from, self.max_frame
        pos, end = 0, len(data)
        while end - pos >= 4:
            (size,) = unpack(data, pos)
            if size > max_frame:
                raise FrameError(f"frame length {size} exceeds {max_frame} bytes")
            stop = pos + 4 + size
            if stop > end:
                break
            out.append(data[pos + 4 : stop])
            pos = stop
        if pos < end:
            self.buf += data[pos:]
        return out

    @property
    def pending(self) -> int:
        return len(self.buf)
