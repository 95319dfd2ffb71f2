"""Normalise and sequence: stamp the stream id, the per-stream sequence number and the trace,
drop duplicates, and keep per-symbol statistics (pure: the clocks are passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from protocol.messages import Book, EndOfStream, Instrument, PhaseChanged, Trace, Trade

replace = msgspec.structs.replace


@dataclass
class SymbolStats:
    events: int = 0
    last_price: int = 0
    last_mono: float = 0.0
    last_trade_key: tuple[int, int, int, int] | None = None


class ObserverEngine:
    def __init__(self, stream: int) -> None:
        self.stream = stream
        self.seq = 0
        self.events = 0  # trades and books published
        self.duplicates = 0
        self.symbols: dict[str, SymbolStats] = {}

    def stamp(self, event: Any, mono_ns: int) -> Any | None:
        """The event as published, or None if it is a duplicate to drop."""
        if isinstance(event, Trade):
            stats = self.symbols.setdefault(event.symbol, SymbolStats())
            # a source that resends a trade repeats every field; cum_volume keeps two genuine
            # same-nanosecond, same-price, same-size trades apart
            key = (event.exch_ns, event.price, event.qty, event.cum_volume)
            if key == stats.last_trade_key:
                self.duplicates += 1
                return None
            stats.last_trade_key = key
            stats.last_price = event.price
            self.seq += 1
            self.events += 1
            stats.events += 1
            stats.last_mono = mono_ns / 1e9
            return replace(event, stream=self.stream, seq=self.seq, trace=Trace(observed=mono_ns))
        if isinstance(event, Book):
            stats = self.symbols.setdefault(event.symbol, SymbolStats())
            stats.last_mono = mono_ns / 1e9
            self.seq += 1
            self.events += 1
            return replace(event, stream=self.stream, seq=self.seq, trace=Trace(observed=mono_ns))
        if isinstance(event, Instrument | PhaseChanged):
            self.seq += 1
            return replace(event, stream=self.stream, seq=self.seq)
        raise TypeError(f"not a market-data event: {type(event).__name__}")

    def end(self) -> EndOfStream:
        self.seq += 1
        return EndOfStream(stream=self.stream, seq=self.seq, events=self.events)

    def stats(self, now_mono: float) -> dict[str, Any]:
        return {
            "events": self.events,
            "duplicates": self.duplicates,
            "stream": self.stream,
            "seq": self.seq,
            "per_symbol": {
                sym: {
                    "events": s.events,
                    "last_price": s.last_price,
                    "age_ms": round((now_mono - s.last_mono) * 1000, 1) if s.last_mono else None,
                }
                for sym, s in sorted(self.symbols.items())
            },
        }


# ------------------------------------------------------------------------------------------------
# History: the Clone pattern's "snapshot + everything after seq N"
# ------------------------------------------------------------------------------------------------

MAX_LIMIT = 10_000  # frames of history in one md_since reply, whatever the client asks
DEFAULT_LIMIT = 2_000
DEFAULT_MAX_BYTES = 4_000_000  # history bytes in one reply (the snapshot part comes on top)

StateKey = tuple[str, str]  # (kind, symbol)


def state_key(msg: Any) -> StateKey:
    """Which piece of current state a message replaces: the latest of each kind per symbol."""
    if isinstance(msg, Trade):
        return ("trade", msg.symbol)
    if isinstance(msg, Book):
        return ("book", msg.symbol)
    if isinstance(msg, Instrument):
        return ("instrument", msg.symbol)
    if isinstance(msg, PhaseChanged):
        return ("phase", msg.symbol)  # "" is the whole market
    if isinstance(msg, EndOfStream):
        return ("eos", "")
    raise TypeError(f"not a market-data message: {type(msg).__name__}")


class MdHistory:
    """The last `capacity` published frames of one stream, by seq, plus the state those that fell
    out of it left behind (the latest Instrument, PhaseChanged, Book and Trade per symbol, and
    EndOfStream). State + ring is everything the stream said, collapsed per symbol and kind:
    memory is bounded by capacity and the size of the universe, never by the length of the day.

    Frames are kept encoded, as sent, so answering costs no encoding."""

    def __init__(self, stream: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"history capacity must be at least 1, got {capacity}")
        self.stream = stream
        self.capacity = capacity
        self.last_seq = 0
        self.first_seq = 1  # the oldest seq still in the ring (last_seq + 1 when it is empty)
        self._ring: list[tuple[int, StateKey, bytes] | None] = [None] * capacity
        self._base: dict[StateKey, tuple[int, bytes]] = {}  # state as of first_seq - 1
        # every key ever seen, each kept once (ring entries share it; _state_at stops early)
        self._keys: dict[StateKey, StateKey] = {}

    def record(self, msg: Any, frame: bytes) -> None:
        """Keep one published message (seq must follow the last one recorded)."""
        seq = msg.seq
        if seq != self.last_seq + 1:
            # a hole would make the ring lie about what it holds: start it afresh at `seq`
            self._fold_until(self.last_seq)
            self.first_seq = seq
        slot = seq % self.capacity
        old = self._ring[slot]
        if old is not None:
            self._base[old[1]] = (old[0], old[2])
            self.first_seq = old[0] + 1
        key = state_key(msg)
        key = self._keys.setdefault(key, key)
        self._ring[slot] = (seq, key, frame)
        self.last_seq = seq

    def _fold_until(self, seq: int) -> None:
        for s in range(self.first_seq, seq + 1):
            entry = self._ring[s % self.capacity]
            if entry is not None and entry[0] == s:
                self._base[entry[1]] = (entry[0], entry[2])
        self._ring = [None] * self.capacity

    def _state_at(self, position: int) -> list[bytes]:
        """The snapshot as of `position` (first_seq - 1 <= position <= last_seq), oldest first:
        the ring read backwards from `position` (the first entry met per key is its latest),
        stopping once every key is found, then what fell out of the ring for the others."""
        state: dict[StateKey, tuple[int, bytes]] = {}
        wanted = len(self._keys)
        s = position
        while s >= self.first_seq and len(state) < wanted:
            entry = self._ring[s % self.capacity]
            if entry is not None and entry[0] == s and entry[1] not in state:
                state[entry[1]] = (entry[0], entry[2])
            s -= 1
        for key, value in self._base.items():
            state.setdefault(key, value)
        return [frame for _, frame in sorted(state.values())]

    def since(
        self,
        stream: int,
        seq: int,
        limit: int = DEFAULT_LIMIT,
        tail: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> dict[str, Any]:
        """The md_since answer for a client that has applied (stream, seq).

        If the ring still holds seq + 1 of this stream: the frames after seq. Otherwise (another
        stream, a seq the ring no longer holds, or stream 0 = "I know nothing") a snapshot as of
        `base` (the ring's start, or at most `tail` messages before the newest) plus the frames
        after base. At most `limit` (capped at MAX_LIMIT) and about max_bytes of frames; the
        client asks again from `next` while `more`."""
        for name, value in (("stream", stream), ("seq", seq), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"md_since: {name} must be a non-negative int, got {value!r}")
        if limit == 0:
            raise ValueError("md_since: limit must be at least 1")
        if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
            raise ValueError(f"md_since: tail must be a non-negative int, got {tail!r}")
        limit = min(limit, MAX_LIMIT)
        held = stream == self.stream and self.first_seq - 1 <= seq <= self.last_seq
        state: list[bytes] = []
        if held:
            base = seq
        else:
            base = self.first_seq - 1
            if tail is not None:
                base = max(base, self.last_seq - tail)
            state = self._state_at(base)
        frames: list[bytes] = []
        size = 0
        s = base + 1
        while s <= self.last_seq and len(frames) < limit and (not frames or size < max_bytes):
            entry = self._ring[s % self.capacity]
            if entry is None or entry[0] != s:
                break  # cannot happen while seqs are contiguous; never serve past a hole
            frames.append(entry[2])
            size += len(entry[2])
            s += 1
        nxt = base + len(frames)
        return {
            "stream": self.stream,
            "seq": self.last_seq,
            "first_seq": self.first_seq,
            "snapshot": not held,
            "state": state,
            "base": base,
            "frames": frames,
            "next": nxt,
            "more": nxt < self.last_seq,
        }
