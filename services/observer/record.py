"""Record synthetic market data to a replay file (test fixtures, demos).

    python -m services.observer.record --out FILE --events N [--seed S]

Uses the configured observer.symbols and observer.book_every; N counts Trade and Book events.
Instruments are written first so a replay carries its reference data.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from services.observer.replay import write_recording
from services.observer.synthetic import SyntheticSource
from services.runtime.settings import load_settings


def record(out: Path, events: int, seed: int | None = None) -> int:
    """Write the instruments and `events` synthetic events to `out`; return frames written."""
    cfg = load_settings().observer
    source = SyntheticSource(cfg.symbols, cfg.seed if seed is None else seed, cfg.book_every)
    body = itertools.islice(source.events(), events)
    return write_recording(out, itertools.chain(source.instruments(), body))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.observer.record")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.events <= 0:
        parser.error("--events must be positive")
    n = record(args.out, args.events, args.seed)
    print(f"wrote {n} frames to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
