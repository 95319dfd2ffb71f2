"""Recordings: round trip, damaged files end cleanly with the offset named."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from protocol.messages import Book, Trade
from services.observer.record import main as record_main
from services.observer.replay import ReplayError, read_recording, write_recording
from services.observer.synthetic import SyntheticSource
from services.runtime.settings import SymbolSpec

SYMBOLS = [SymbolSpec(symbol="005930", base_price=71_000)]


def events(n: int) -> list[Trade | Book]:
    src = SyntheticSource(SYMBOLS, 3, book_every=2, clock=lambda: 1_700_000_000_000_000_000)
    return list(itertools.islice(src.events(), n))


def test_replay_when_recorded_then_identical_messages(tmp_path: Path) -> None:
    path = tmp_path / "day.qtsrec.gz"
    written = events(500)

    write_recording(path, written)

    assert list(read_recording(path)) == written


def test_replay_when_truncated_then_good_frames_then_error_with_offset(tmp_path: Path) -> None:
    path = tmp_path / "cut.qtsrec.gz"
    written = events(100)
    write_recording(path, written)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) - 7]))  # cut inside the last frame
    got: list[object] = []

    with pytest.raises(ReplayError, match="offset"):
        for msg in read_recording(path):
            got.append(msg)

    assert got == written[:-1]


def test_replay_when_frame_garbage_then_error_after_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "bad.qtsrec.gz"
    write_recording(path, events(10))
    raw = gzip.decompress(path.read_bytes())
    bad = raw + (4).to_bytes(4, "big") + b"\xc1\xc1\xc1\xc1"
    path.write_bytes(gzip.compress(bad))
    got: list[object] = []

    with pytest.raises(ReplayError, match=f"offset {len(raw)}"):
        for msg in read_recording(path):
            got.append(msg)

    assert len(got) == 10


def test_replay_when_not_gzip_then_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.bin"
    path.write_bytes(b"this is not a recording")

    with pytest.raises(ReplayError):
        list(read_recording(path))


def test_record_cli_when_run_then_file_replays_instruments_and_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QTS_RUNTIME__VAR_DIR", str(tmp_path))
    out = tmp_path / "fixture.qtsrec.gz"

    assert record_main(["--out", str(out), "--events", "50"]) == 0

    msgs = list(read_recording(out))
    body = [m for m in msgs if isinstance(m, Trade | Book)]
    assert len(body) == 50
    assert msgs[0].symbol and len(msgs) > 50  # instruments first
