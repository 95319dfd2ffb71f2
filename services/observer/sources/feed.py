"""One external feed's state, pure (no sockets; the monotonic clock is passed in).

Frames in, normalised QTS market data out (protocol.messages with stream/seq 0: the engine
stamps them), and the frames QTS must send back queued in `outbox`. It owns the handshake,
validation (typed decode, then the checks a type cannot express), the feed sequence (gaps,
duplicates, snapshot requests), the books built from deltas, per-symbol staleness and the
bad-frame flood window. services/observer/sources/external.py wires it to a transport.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import msgspec

from protocol.enums import MarketPhase
from protocol.messages import Book, Instrument, PhaseChanged, Trade
from services.observer.sources import wire
from services.runtime import krx
from services.runtime.log import logger

BOOK_LEVELS = 10  # levels published per side (the synthetic source's depth)
_QUIET = frozenset({MarketPhase.VI, MarketPhase.HALTED})  # a silent symbol is expected there


class HandshakeError(Exception):
    """The Observer and QTS share no protocol version, or the Observer refused us."""


class FeedError(Exception):
    """The connection is unusable (a protocol violation that cannot be skipped): reconnect."""


@dataclass(frozen=True)
class FeedConfig:
    symbols: tuple[str, ...] = ()  # the subscription; empty = everything the Observer has
    stale_after_s: float = 3.0
    snapshot_timeout_s: float = 2.0
    flood_frames: int = 100  # this many bad frames ...
    flood_window_s: float = 10.0  # ... within this many seconds is a flood (reported)
    versions: tuple[int, ...] = wire.VERSIONS


@dataclass
class SymbolState:
    last_mono: float = 0.0  # last message about the symbol (or when we learnt of it)
    stale: bool = False
    recovering: bool = False  # a gap hid its messages: stale until a snapshot covers it
    phase: MarketPhase | None = None  # VI / HALTED / CONTINUOUS from SymbolStatus
    lower: int = 0
    upper: int = 0
    bids: dict[int, int] | None = None  # built on the first delta after a snapshot
    asks: dict[int, int] | None = None
    book: tuple[list[tuple[int, int]], list[tuple[int, int]]] = ([], [])
    book_ok: bool = False  # a delta applies only on top of a snapshot and no gap since


@dataclass
class FeedStatus:
    state: str = "disconnected"  # disconnected, handshake, live, rejected
    feed_id: str = ""
    session: int = 0
    version: int = 0
    detail: str = ""
    counters: dict[str, int] = field(default_factory=dict)


class Feed:
    def __init__(self, cfg: FeedConfig) -> None:
        self.cfg = cfg
        self.decode = wire.observer_decoder().decode
        self.status = FeedStatus()
        self.counters = self.status.counters
        self.outbox: list[msgspec.Struct] = []
        self.symbols: dict[str, SymbolState] = {}
        self.subscribed = frozenset(cfg.symbols)
        self.nonce = 0
        self.expected = 0  # the next feed seq we expect (0 = before Welcome)
        self.last_seq = 0  # last data seq applied
        self.request_id = 0
        self.pending_request: tuple[int, float] | None = None  # (request_id, sent at)
        self.in_snapshot: wire.SnapshotBegin | None = None
        self.market_phase: MarketPhase | None = None  # from the Observer's Session messages
        self.last_frame = 0.0
        self.bad_times: collections.deque[float] = collections.deque(maxlen=cfg.flood_frames)
        self.flood_reported = 0.0
        self.bad_logged = -1.0
        self._data: dict[type, Any] = {
            wire.TradeTick: self.on_trade,
            wire.BookSnapshot: self.on_book,
            wire.BookDelta: self.on_delta,
            wire.InstrumentInfo: self.on_instrument,
            wire.SymbolStatus: self.on_status,
            wire.Session: self.on_session,
        }
        self._control: dict[type, Any] = {
            wire.Heartbeat: self.on_heartbeat,
            wire.SnapshotBegin: self.on_snapshot_begin,
            wire.SnapshotEnd: self.on_snapshot_end,
            wire.Welcome: self.on_welcome,
            wire.Reject: self.on_reject,
        }
        for key in (
            "bad_frames",
            "gaps",
            "gap_messages",
            "duplicates",
            "snapshot_requests",
            "stale_marks",
            "bad_frame_floods",
            "deltas_dropped",
        ):
            self.counters[key] = 0

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    # ------------------------------------------------------------------------- connection
    def connected(self, now: float) -> None:
        """A transport connection is up: say hello (again, on ZeroMQ, until answered)."""
        self.nonce += 1
        self.status.state = "handshake"
        self.last_frame = now
        self.in_snapshot = None
        self.expected = 0  # no data until Welcome says where the stream stands
        self.outbox.append(
            wire.Hello(
                versions=list(self.cfg.versions), nonce=self.nonce, symbols=list(self.cfg.symbols)
            )
        )

    def disconnected(self, reason: str) -> None:
        if self.status.state != "rejected":
            self.status.state = "disconnected"
            self.status.detail = reason
        self.in_snapshot = None
        self.pending_request = None
        self.expected = 0

    # ------------------------------------------------------------------------- frames
    def handle(self, frame: bytes, now: float, out: list[Any]) -> None:
        """Validate one frame and append what it means for QTS to `out`."""
        self.last_frame = now
        try:
            msg: Any = self.decode(frame)  # one of wire.FromObserver
        except wire.DecodeError as exc:
            self.bad(now, f"does not decode: {exc}")
            return
        on = self._data.get(type(msg))
        if on is None:
            self._control[type(msg)](msg, now)
            return
        seq = msg.seq
        if seq == self.expected and seq and self.in_snapshot is None:  # the common case
            self.expected = seq + 1
            self.last_seq = seq
        elif not self.sequence(seq, now):
            return
        on(msg, now, out)

    def on_reject(self, msg: wire.Reject, now: float) -> None:
        if msg.nonce in (0, self.nonce):
            self.reject(
                f"the Observer refused the handshake: {msg.reason} "
                f"(it speaks versions {msg.versions}, QTS speaks {list(self.cfg.versions)})"
            )

    def on_session(self, msg: wire.Session, now: float, out: list[Any]) -> None:
        # QTS's exchange calendar owns the market-wide phase it publishes (SessionClock); the
        # Observer's is kept for stats
        self.market_phase = msg.phase

    def bad(self, now: float, why: str) -> None:
        """Count and drop one frame; report a flood (N bad frames within M seconds)."""
        self.count("bad_frames")
        times = self.bad_times
        times.append(now)
        if len(times) == times.maxlen and now - times[0] <= self.cfg.flood_window_s:
            if now - self.flood_reported > self.cfg.flood_window_s:
                self.flood_reported = now
                self.count("bad_frame_floods")
                logger.error(
                    "observer feed {!r}: flood of bad frames ({} within {:.1f} s; {} in all), "
                    "latest: {}",
                    self.status.feed_id,
                    len(times),
                    now - times[0],
                    self.counters["bad_frames"],
                    why,
                )
        elif now - self.bad_logged >= 1.0:  # at most one line a second
            self.bad_logged = now
            logger.warning(
                "observer feed: dropped a bad frame ({} so far): {}",
                self.counters["bad_frames"],
                why,
            )

    def sequence(self, seq: int, now: float) -> bool:
        """True if a data message with this feed seq is to be applied."""
        if not self.expected:
            self.count("before_welcome")
            return False
        snap = self.in_snapshot
        if snap is not None and seq == snap.seq:
            return True  # snapshot content, as of the snapshot's seq
        if seq == self.expected:
            self.expected = seq + 1
            self.last_seq = seq
            return True
        if seq < self.expected:
            self.count("duplicates")
            return False
        self.gap(seq - self.expected, now)
        self.expected = seq + 1
        self.last_seq = seq
        return True

    def gap(self, missing: int, now: float) -> None:
        self.count("gaps")
        self.count("gap_messages", missing)
        logger.warning(
            "observer feed {!r}: {} message(s) missing before seq {}: requesting a snapshot",
            self.status.feed_id,
            missing,
            self.expected + missing,
        )
        for st in self.symbols.values():
            st.recovering = True
            st.book_ok = False
        self.request_snapshot(now)

    def request_snapshot(self, now: float) -> None:
        if self.pending_request is not None:
            return  # one outstanding; snapshot_timeout re-requests
        self.request_id += 1
        self.pending_request = (self.request_id, now)
        self.count("snapshot_requests")
        self.outbox.append(wire.SnapshotRequest(request_id=self.request_id))

    # ------------------------------------------------------------------------- control
    def on_welcome(self, msg: wire.Welcome, now: float) -> None:
        if msg.nonce not in (0, self.nonce) or self.status.state != "handshake":
            return  # an answer to another subscriber or to an earlier hello
        if msg.version not in self.cfg.versions:
            self.reject(
                f"the Observer answered with protocol version {msg.version}; QTS speaks "
                f"{list(self.cfg.versions)}"
            )
            return
        st = self.status
        resumed = (msg.feed_id, msg.session) == (
            st.feed_id,
            st.session,
        ) and msg.seq == self.last_seq
        if st.session and not resumed:
            missing = msg.seq - self.last_seq if msg.session == st.session else 0
            self.count("gaps")
            self.count("gap_messages", max(missing, 0))
            logger.warning(
                "observer feed {!r}: reconnected (session {} seq {} -> session {} seq {}): "
                "requesting a snapshot",
                msg.feed_id,
                st.session,
                self.last_seq,
                msg.session,
                msg.seq,
            )
            for sym in self.symbols.values():
                sym.recovering = True
                sym.book_ok = False
        st.state, st.feed_id, st.session, st.version, st.detail = (
            "live",
            msg.feed_id,
            msg.session,
            msg.version,
            "",
        )
        self.expected = msg.seq + 1
        self.last_seq = msg.seq
        self.pending_request = None
        if not resumed:
            self.request_snapshot(now)  # the state we need before the first delta or trade
        logger.info(
            "observer feed {!r} live: protocol {}, session {}, seq {}",
            msg.feed_id,
            msg.version,
            msg.session,
            msg.seq,
        )

    def reject(self, reason: str) -> None:
        self.status.state = "rejected"
        self.status.detail = reason
        self.expected = 0
        raise HandshakeError(reason)

    def on_heartbeat(self, msg: wire.Heartbeat, now: float) -> None:
        if not self.expected:
            return
        if msg.session != self.status.session:
            raise FeedError(
                f"the Observer restarted (session {self.status.session} -> {msg.session})"
            )
        if msg.seq >= self.expected and self.in_snapshot is None:
            # the tail was lost: nothing after it would show the gap
            self.gap(msg.seq - self.expected + 1, now)
            self.expected = msg.seq + 1
            self.last_seq = msg.seq

    def on_snapshot_begin(self, msg: wire.SnapshotBegin, now: float) -> None:
        if not self.expected:
            return
        if msg.seq >= self.expected:  # a gap just before it: the snapshot covers it
            self.expected = msg.seq + 1
            self.last_seq = msg.seq
        self.in_snapshot = msg

    def on_snapshot_end(self, msg: wire.SnapshotEnd, now: float) -> None:
        snap = self.in_snapshot
        self.in_snapshot = None
        if snap is None or snap.request_id != msg.request_id:
            return
        mine = self.pending_request is not None and self.pending_request[0] == msg.request_id
        if mine:
            self.pending_request = None
        if mine or msg.request_id == 0:
            recovered = sorted(sym for sym, st in self.symbols.items() if st.stale)
            for st in self.symbols.values():
                st.recovering = st.stale = False
                st.book_ok = True  # no book in the snapshot: an empty book
                st.last_mono = now
            logger.info(
                "observer feed: snapshot {} applied at seq {}{}",
                msg.request_id,
                msg.seq,
                f"; fresh again: {', '.join(recovered)}" if recovered else "",
            )

    # ------------------------------------------------------------------------- data
    def fresh(self, st: SymbolState, now: float) -> None:
        st.last_mono = now
        if st.stale and not st.recovering:
            st.stale = False

    def symbol(self, symbol: str) -> SymbolState | None:
        st = self.symbols.get(symbol)
        if st is None:
            if self.subscribed and symbol not in self.subscribed:
                self.count("unsubscribed")
            else:
                self.count("unknown_symbol")  # data before its instrument: ask for state
            return None
        return st

    def on_trade(self, msg: wire.TradeTick, now: float, out: list[Any]) -> None:
        st = self.symbols.get(msg.symbol) or self.symbol(msg.symbol)
        if st is None:
            return
        if not st.lower <= msg.price <= st.upper:
            self.bad(now, f"trade {msg.symbol} at {msg.price} outside {st.lower}..{st.upper}")
            return
        st.last_mono = now
        if st.stale and not st.recovering:
            st.stale = False
        out.append(
            Trade(
                stream=0,
                seq=0,
                symbol=msg.symbol,
                exch_ns=msg.exch_ns,
                price=msg.price,
                qty=msg.qty,
                aggressor=msg.aggressor,
                cum_volume=msg.cum_volume,
            )
        )

    def on_book(self, msg: wire.BookSnapshot, now: float, out: list[Any]) -> None:
        st = self.symbols.get(msg.symbol) or self.symbol(msg.symbol)
        if st is None:
            return
        bids, asks = msg.bids, msg.asks
        why = _check_sides(bids, asks)
        if why:
            self.bad(now, f"book {msg.symbol}: {why}")
            return
        if len(bids) > BOOK_LEVELS or len(asks) > BOOK_LEVELS:
            bids, asks = bids[:BOOK_LEVELS], asks[:BOOK_LEVELS]
        st.book = (bids, asks)
        st.bids = st.asks = None
        st.book_ok = True
        st.recovering = False  # the symbol's state is whole again
        self.fresh(st, now)
        out.append(
            Book(stream=0, seq=0, symbol=msg.symbol, exch_ns=msg.exch_ns, bids=bids, asks=asks)
        )

    def on_delta(self, msg: wire.BookDelta, now: float, out: list[Any]) -> None:
        st = self.symbols.get(msg.symbol) or self.symbol(msg.symbol)
        if st is None:
            return
        if not st.book_ok:
            self.count("deltas_dropped")  # no base to apply it to until a snapshot
            return
        why = _check_sides(msg.bids, msg.asks)
        if why:
            self.bad(now, f"book delta {msg.symbol}: {why}")
            return
        if st.bids is None or st.asks is None:
            st.bids, st.asks = dict(st.book[0]), dict(st.book[1])
        _apply(st.bids, msg.bids)
        _apply(st.asks, msg.asks)
        bids = sorted(st.bids.items(), reverse=True)[:BOOK_LEVELS]
        asks = sorted(st.asks.items())[:BOOK_LEVELS]
        st.book = (bids, asks)
        self.fresh(st, now)
        out.append(
            Book(stream=0, seq=0, symbol=msg.symbol, exch_ns=msg.exch_ns, bids=bids, asks=asks)
        )

    def on_instrument(self, msg: wire.InstrumentInfo, now: float, out: list[Any]) -> None:
        if self.subscribed and msg.symbol not in self.subscribed:
            self.count("unsubscribed")
            return
        lower, upper = msg.lower_limit, msg.upper_limit
        if not (lower and upper):
            lower, upper = krx.price_limits(msg.base_price, msg.kind, msg.market)
        if not 0 < lower <= msg.base_price <= upper:
            self.bad(
                now, f"instrument {msg.symbol}: limits {lower}..{upper} around {msg.base_price}"
            )
            return
        st = self.symbols.get(msg.symbol)
        if st is None:
            st = self.symbols[msg.symbol] = SymbolState(last_mono=now)
        st.lower, st.upper = lower, upper
        out.append(
            Instrument(
                stream=0,
                seq=0,
                symbol=msg.symbol,
                market=msg.market,
                kind=msg.kind,
                base_price=msg.base_price,
                upper_limit=upper,
                lower_limit=lower,
                name=msg.name,
            )
        )

    def on_status(self, msg: wire.SymbolStatus, now: float, out: list[Any]) -> None:
        st = self.symbol(msg.symbol)
        if st is None:
            return
        st.phase = msg.phase
        self.fresh(st, now)
        out.append(
            PhaseChanged(stream=0, seq=0, symbol=msg.symbol, exch_ns=msg.exch_ns, phase=msg.phase)
        )

    # ------------------------------------------------------------------------- time
    def tick(self, now: float, in_session: bool) -> None:
        """Staleness (a symbol silent for stale_after_s while the market trades, not in a VI
        or halt) and the snapshot request's timeout."""
        if self.pending_request is not None and self.status.state == "live":
            rid, sent = self.pending_request
            if now - sent > self.cfg.snapshot_timeout_s:
                logger.warning("observer feed: snapshot request {} unanswered: asking again", rid)
                self.count("snapshot_retries")
                self.pending_request = None
                self.request_snapshot(now)
        limit = self.cfg.stale_after_s
        live = self.status.state == "live"
        for sym, st in self.symbols.items():
            silent = in_session and st.phase not in _QUIET and now - st.last_mono > limit
            stale = st.recovering or silent or not live
            if stale and not st.stale:
                self.count("stale_marks")
                why = "awaiting a snapshot" if st.recovering else f"silent > {limit:.1f} s"
                if not live:
                    why = f"feed {self.status.state}"
                logger.warning("observer feed: {} marked stale ({})", sym, why)
            elif st.stale and not stale:
                logger.info("observer feed: {} fresh again", sym)
            st.stale = stale

    def stale_symbols(self) -> list[str]:
        return sorted(sym for sym, st in self.symbols.items() if st.stale)


def _check_sides(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> str:
    """'' if both sides are ordered best first without repeats (the decoder checked qty)."""
    # sorted() on the (price, qty) pairs and dict() for repeats: both in C, this is per book
    if bids != sorted(bids, reverse=True) or len(dict(bids)) != len(bids):
        return f"bids not strictly descending: {[p for p, _ in bids]}"
    if asks != sorted(asks) or len(dict(asks)) != len(asks):
        return f"asks not strictly ascending: {[p for p, _ in asks]}"
    return ""


def _apply(side: dict[int, int], changes: list[tuple[int, int]]) -> None:
    for price, qty in changes:
        if qty:
            side[price] = qty
        else:
            side.pop(price, None)
