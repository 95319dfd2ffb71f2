"""`make bench`: the whole system on the paper venue with `pulse`, tick-to-order per stage.

Runs a real deployment (supervisord, every service) in a temporary directory, drives the
synthetic observer at a fixed tick rate for a fixed number of events, and reads the latency
histograms the performance service built from the messages' own traces. Prints a table and
writes the figures as JSON under var/bench/.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.floor import run_floor
from tests.bench.halt import print_halts, run_halts
from tests.bench.ingest import print_result as print_ingest
from tests.bench.ingest import run as run_ingest
from tests.bench.recovery import memory, print_memory, print_restarts, run_restarts
from tests.bench.replay import print_replay, run_replay
from tests.bench.risk import print_risk, run_risk_bench
from tests.kit import REPO, System, eventually

STAGES = ("strategy", "risk", "execution", "broker", "tick_to_order", "tick_to_ack")


def run_system(rate: int, seconds: float, every: int) -> dict[str, Any]:
    """One deployment at `rate` ticks/s for `seconds`: latency per stage from the orders' own
    traces, whether the strategy lost market data (md_sync's counters), memory per service."""
    events = int(rate * seconds)
    with tempfile.TemporaryDirectory(prefix="qts-bench-") as tmp:
        system = System(
            Path(tmp),
            STRATEGY_SCOPE="pulse",
            QTS_STRATEGY__PULSE_EVERY=str(every),
            QTS_OBSERVER__RATE_HZ=str(rate),
            QTS_OBSERVER__MAX_EVENTS=str(events),
            LOG_LEVEL="WARNING",
        )
        try:
            system.start()
            t0 = time.monotonic()
            mem_start = memory(system.conf)
            stats = eventually(
                lambda: (s := system.call("observer", "stats"))["done"] and s,
                timeout=seconds * 4 + 30,
                interval=0.2,
                message="observer finished its events",
            )
            elapsed = time.monotonic() - t0
            mem_end = memory(system.conf)
            time.sleep(1.0)  # let the last orders' answers arrive
            summary = system.call("performance", "summary")
            ping = {
                name: system.call(name, "ping")
                for name in (
                    "observer",
                    "strategy",
                    "risk",
                    "execution",
                    "portfolio",
                    "performance",
                )
            }
        finally:
            system.stop()
    strategy = ping["strategy"]["counters"]
    return {
        "md_to_strategy": {
            k: strategy.get(k, 0) for k in ("md_gaps", "md_recovered", "md_lost", "md_duplicates")
        },
        "memory_kb": {"start": mem_start, "end": mem_end},
        "rate_hz": rate,
        "events": stats["events"],
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(stats["events"] / elapsed, 1) if elapsed else None,
        "orders": summary.get("orders"),
        "fills": summary.get("fills"),
        "latency_us": summary.get("latency_us", {}),
        "bad_frames": {
            n: {k: v for k, v in p["counters"].items() if k.startswith("bad_frames")}
            for n, p in ping.items()
        },
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\nsystem on paper venue, pulse: {result['rate_hz']} ticks/s target, "
        f"{result['events']} events in {result['elapsed_s']} s "
        f"({result['events_per_s']} events/s), {result['orders']} orders, "
        f"{result['fills']} fills"
    )
    print(f"{'stage':<16}{'count':>8}{'p50 us':>10}{'p99 us':>10}{'p99.9 us':>10}{'max us':>10}")
    for stage in STAGES:
        h = result["latency_us"].get(stage)
        if not h:
            continue
        print(
            f"{stage:<16}{h['count']:>8}{h['p50']:>10.0f}{h['p99']:>10.0f}"
            f"{h['p999']:>10.0f}{h['max']:>10.0f}"
        )


def print_throughput(runs: list[dict[str, Any]]) -> None:
    print("\nmarket data through to the strategy (md_sync: gaps recovered from the observer)")
    print(f"{'target/s':>10}{'achieved/s':>12}{'gaps':>7}{'recovered':>11}{'lost':>7}")
    for r in runs:
        md = r["md_to_strategy"]
        print(
            f"{r['rate_hz']:>10}{r['events_per_s']:>12}{md['md_gaps']:>7}"
            f"{md['md_recovered']:>11}{md['md_lost']:>7}"
        )
    clean = [
        r["rate_hz"]
        for r in runs
        if not r["md_to_strategy"]["md_lost"]
        and not r["md_to_strategy"]["md_gaps"]
        and (r["events_per_s"] or 0) >= 0.95 * r["rate_hz"]
    ]
    print(f"highest rate with no gap and >= 95% of the target: {max(clean, default=0)} ticks/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run that proves it works")
    parser.add_argument("--rate", type=int, default=1000, help="ticks per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--every", type=int, default=10, help="pulse: one order per N ticks")
    parser.add_argument("--long", action="store_true", help="also 10 minutes at 10k ticks/s")
    args = parser.parse_args()
    if args.quick:
        args.rate, args.seconds = 500, 3.0
    floor = run_floor(args.rate, min(args.seconds, 5.0))
    result = run_system(args.rate, args.seconds, args.every)
    # higher tick rates at the same order rate (100/s): what the market-data path sustains
    ladder = [] if args.quick else [run_system(r, 10.0, r // 100) for r in (10_000, 50_000)]
    if args.long:
        ladder.append(run_system(10_000, 600.0, 100))  # memory must stay flat
    f = floor["latency_us"]
    print(
        f"\nfloor: bare 4-process ZeroMQ ipc chain at {floor['rate_hz']} msg/s, "
        f"{floor['messages']} messages: p50 {f['p50']:.0f} us, p99 {f['p99']:.0f} us, "
        f"p99.9 {f['p999']:.0f} us"
    )
    print_table(result)
    for r in ladder:
        print_table(r)
    print_throughput([result, *ladder])
    last = ladder[-1] if ladder else result
    print_memory(
        f"{last['rate_hz']} ticks/s for {last['elapsed_s']} s",
        last["memory_kb"]["start"],
        last["memory_kb"]["end"],
    )
    restarts = {} if args.quick else run_restarts()
    if restarts:
        print_restarts(restarts)
    halts = run_halts(5 if args.quick else 30)
    print_halts(halts)
    risk = run_risk_bench(20_000 if args.quick else 200_000)
    print_risk(risk)
    ingest = run_ingest(50_000 if args.quick else 200_000, 1 if args.quick else 3)
    print_ingest(ingest)
    replay = run_replay(10_000 if args.quick else 50_000)  # a recorded day, whole pipeline
    print_replay(replay)
    replay_lockstep = None if args.quick else run_replay(3_000, lockstep=True)
    if replay_lockstep:
        print_replay(replay_lockstep)
    t2o = result["latency_us"].get("tick_to_order")
    if t2o and f["p50"]:
        print(
            f"tick-to-order / floor: p50 {t2o['p50'] / f['p50']:.2f}x, "
            f"p99 {t2o['p99'] / f['p99']:.2f}x"
        )
    out_dir = REPO / "var" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    payload = {
        "when": stamp,
        "quick": args.quick,
        "floor": floor,
        "system": result,
        "ladder": ladder,
        "restarts": restarts,
        "halt": halts,
    }
    payload["risk"] = risk
    payload["ingest"] = ingest
    payload["replay"] = replay
    payload["replay_lockstep"] = replay_lockstep
    for name in (f"bench-{stamp}.json", "latest.json"):
        (out_dir / name).write_text(json.dumps(payload, indent=2))
    print(f"\nwritten to {out_dir / 'latest.json'}")
    ok = result["orders"] and result["latency_us"].get("tick_to_order", {}).get("count")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
