"""Replay speed: a recorded day through the whole system (every process, the paper venue, pulse)
as fast as possible (observer.replay_speed 0, no gap between events).

Two figures: the observer's publishing rate (first event to last, the observer's own clock) and
the pipeline's (from the first event until the strategy has taken every event and every order
the venue numbered is closed and journaled), which is what a user replaying a day waits for.
Market data the strategy could not keep up with is recovered by md_sync: its counters are shown.

    .venv/bin/python -m tests.bench.replay [--events N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from protocol.enums import MarketPhase
from protocol.messages import MarketData, PhaseChanged
from services.observer.replay import write_recording
from services.observer.synthetic import SyntheticSource
from tests.data.make_sample import DAY, SEED, SYMBOLS
from tests.integration.test_replay_determinism import replay_config
from tests.kit import System, eventually

KST = ZoneInfo("Asia/Seoul")


def at(hh: int, mm: int) -> int:
    return int(dt.datetime.combine(DAY, dt.time(hh, mm), tzinfo=KST).timestamp()) * 10**9


def day(events: int) -> Iterator[MarketData]:
    """A KRX day of `events` synthetic trades and books between 09:00 and 15:20, with the
    market-wide phases, stamped as the observer stamps them (stream 1, seq 1, 2, ...)."""
    now = [at(8, 30)]
    source = SyntheticSource(SYMBOLS, SEED, book_every=2, clock=lambda: now[0])

    def phase(p: MarketPhase) -> PhaseChanged:
        return PhaseChanged(stream=0, seq=0, symbol="", exch_ns=now[0], phase=p)

    def body() -> Iterator[MarketData]:
        yield from source.instruments()
        yield phase(MarketPhase.PRE_OPEN)
        now[0] = at(9, 0)
        yield phase(MarketPhase.CONTINUOUS)
        market = source.events()
        start, end = at(9, 0), at(15, 19)
        for i in range(events):
            now[0] = start + (end - start) * (i + 1) // (events + 1)
            yield next(market)
        now[0] = at(15, 20)
        yield phase(MarketPhase.CLOSING_AUCTION)
        now[0] = at(15, 30)
        yield phase(MarketPhase.CLOSED)

    for seq, event in enumerate(body(), 1):
        yield msgspec.structs.replace(event, stream=1, seq=seq)


def through(system: System) -> bool:
    """The pipeline is done with the replay: the observer has published every event, the
    strategy has taken them all and no order is open at the venue or in execution."""
    obs = system.call("observer", "stats")
    if not obs["done"] or system.call("strategy", "stats")["md"]["seq"] < obs["seq"]:
        return False
    if any(o["status"] == "OPEN" for o in system.call("venue", "orders")["orders"]):
        return False
    open_exec = system.call("execution", "orders", {"open_only": True, "limit": 100_000})
    return not (open_exec["orders"] if isinstance(open_exec, dict) else open_exec)


def run_replay(events: int, every: int = 10, lockstep: bool = False) -> dict[str, Any]:
    """One deployment replaying a day of `events` market events as fast as possible, or as fast
    as the lockstep allows (observer.replay_lockstep: the repeatable replay)."""
    with tempfile.TemporaryDirectory(prefix="qts-bench-replay-") as tmp:
        recording = Path(tmp) / "day.qtsrec.gz"
        write_recording(recording, day(events))
        system = System(
            Path(tmp) / "qts",
            **replay_config(
                lockstep=lockstep,
                QTS_OBSERVER__REPLAY_PATH=str(recording),
                QTS_STRATEGY__PULSE_EVERY=str(every),
            ),
        )
        try:
            system.start()
            # the replay starts a second after trading is ACTIVE: time it from its first event
            eventually(
                lambda: system.call("observer", "stats")["elapsed_s"] > 0,
                timeout=30,
                interval=0.005,
                message="the replay started",
            )
            t0 = time.monotonic()
            eventually(
                lambda: through(system),
                timeout=events / 100 + 60,
                interval=0.005,
                message="the replay went through the pipeline",
            )
            pipeline_s = time.monotonic() - t0
            obs = system.call("observer", "stats")
            strategy = system.call("strategy", "ping")["counters"]
            venue = system.call("venue", "ping")["counters"]
            summary = system.call("performance", "summary")
            denied = system.call("risk", "stats").get("denied", {})
        finally:
            system.stop()
    md = {k: strategy.get(k, 0) for k in ("md_gaps", "md_recovered", "md_lost")}
    return {
        "lockstep": lockstep,
        "events": obs["events"],
        "published_s": obs["elapsed_s"],
        "published_per_s": round(obs["events"] / obs["elapsed_s"]) if obs["elapsed_s"] else None,
        "pipeline_s": round(pipeline_s, 3),
        "pipeline_per_s": round(obs["events"] / pipeline_s) if pipeline_s > 0 else None,
        "orders": summary.get("orders"),
        "fills": summary.get("fills"),
        "denied": denied,
        "strategy_md": md,
        "venue_md": {k: venue.get(k, 0) for k in ("md_gaps", "md_recovered", "md_lost")},
    }


def print_replay(r: dict[str, Any]) -> None:
    print(
        f"\nreplay {'in lockstep' if r['lockstep'] else 'as fast as possible'}, whole system with "
        f"pulse: {r['events']:,} events published "
        f"in {r['published_s']} s ({r['published_per_s']:,} events/s); through the pipeline "
        f"in {r['pipeline_s']} s ({r['pipeline_per_s']:,} events/s); {r['orders']} orders, "
        f"{r['fills']} fills, denied by risk {r['denied'] or 'none'}; "
        f"strategy md gaps/recovered/lost {r['strategy_md']['md_gaps']}/"
        f"{r['strategy_md']['md_recovered']}/{r['strategy_md']['md_lost']}, venue "
        f"{r['venue_md']['md_gaps']}/{r['venue_md']['md_recovered']}/{r['venue_md']['md_lost']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--lockstep", action="store_true", help="the repeatable replay")
    args = parser.parse_args()
    print_replay(run_replay(args.events, lockstep=args.lockstep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
