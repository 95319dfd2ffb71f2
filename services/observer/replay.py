"""Recorded market data: gzip files of length-prefixed MessagePack frames.

Layout: a header frame {"format": "qts-md", "version": 1, "created_ns": ...}, then one frame per
MarketData message (protocol.codec.encode), each preceded by its length as 4 bytes big-endian.
A truncated or corrupt file replays what decodes and then ends with an error naming the offset.
"""

from __future__ import annotations

import gzip
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from protocol import codec
from protocol.messages import MarketData

FORMAT = "qts-md"
VERSION = 1
_LEN = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024


class ReplayError(Exception):
    """The file is not a QTS recording, or is damaged at `offset`."""


def write_recording(path: Path, events: Iterable[Any]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with gzip.open(path, "wb") as fh:
        header = msgspec.msgpack.encode(
            {"format": FORMAT, "version": VERSION, "created_ns": time.time_ns()}
        )
        fh.write(_LEN.pack(len(header)) + header)
        for event in events:
            frame = codec.encode(event)
            fh.write(_LEN.pack(len(frame)) + frame)
            n += 1
    return n


def read_recording(path: Path) -> Iterator[MarketData]:
    """Yield every message; raise ReplayError (after the good ones) on damage."""
    decode = codec.decoder("md").decode
    offset = 0
    try:
        with gzip.open(path, "rb") as fh:
            first = True
            while True:
                head = fh.read(4)
                if not head:
                    return
                if len(head) < 4:
                    raise ReplayError(f"{path}: truncated length prefix at frame offset {offset}")
                (size,) = _LEN.unpack(head)
                if size > MAX_FRAME:
                    raise ReplayError(f"{path}: frame of {size} bytes at offset {offset}")
                frame = fh.read(size)
                if len(frame) < size:
                    raise ReplayError(f"{path}: truncated frame at offset {offset}")
                if first:
                    header = msgspec.msgpack.decode(frame)
                    if not isinstance(header, dict) or header.get("format") != FORMAT:
                        raise ReplayError(f"{path}: not a QTS market-data recording")
                    first = False
                else:
                    try:
                        yield decode(frame)
                    except codec.DecodeError as exc:
                        raise ReplayError(f"{path}: bad frame at offset {offset}: {exc}") from exc
                offset += 4 + size
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ReplayError(f"{path}: unreadable at offset {offset}: {exc}") from exc
