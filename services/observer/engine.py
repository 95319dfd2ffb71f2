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
