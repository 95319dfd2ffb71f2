"""The floor: a bare chain of 4 Python processes passing msgspec messages over ZeroMQ ipc.

source -> hop1 -> hop2 -> sink, PUSH/PULL, blocking receive, no other work. The source stamps
CLOCK_MONOTONIC (system-wide on Linux) into each message at a fixed rate; the sink records
(now - stamp). What QTS's own hot path costs is judged against this (issue 12).
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq


class Tick(msgspec.Struct, array_like=True):
    seq: int
    sent: int
    symbol: str
    price: int
    qty: int


def _hop(pull_addr: str, push_addr: str | None, count: int, out: Any) -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(pull_addr)
    push = None
    if push_addr:
        push = ctx.socket(zmq.PUSH)
        push.connect(push_addr)
    dec = msgspec.msgpack.Decoder(Tick)
    enc = msgspec.msgpack.Encoder()
    lat: list[int] = []
    out.put("ready")
    for _ in range(count):
        msg = dec.decode(pull.recv())
        if push is not None:
            push.send(enc.encode(msg))
        else:
            lat.append(time.monotonic_ns() - msg.sent)
    if push is None:
        out.put(lat)
    ctx.destroy(linger=0)


def _pct(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[idx] / 1000.0


def run_floor(rate: int = 1000, seconds: float = 5.0) -> dict[str, Any]:
    count = int(rate * seconds)
    with tempfile.TemporaryDirectory(prefix="qts-floor-") as tmp:
        addrs = [f"ipc://{Path(tmp) / f'h{i}.sock'}" for i in range(3)]
        out: Any = mp.get_context("spawn").Queue()
        procs = [
            mp.get_context("spawn").Process(target=_hop, args=(addrs[0], addrs[1], count, out)),
            mp.get_context("spawn").Process(target=_hop, args=(addrs[1], addrs[2], count, out)),
            mp.get_context("spawn").Process(target=_hop, args=(addrs[2], None, count, out)),
        ]
        for p in procs:
            p.start()
        for _ in procs:
            out.get(timeout=30)
        ctx = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        push.connect(addrs[0])
        time.sleep(0.2)  # let the connects settle before timing starts
        enc = msgspec.msgpack.Encoder()
        interval = 1.0 / rate
        start = time.monotonic()
        for seq in range(count):
            due = start + seq * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            push.send(enc.encode(Tick(seq, time.monotonic_ns(), "005930", 71_000, 1)))
        lat = sorted(out.get(timeout=60))
        for p in procs:
            p.join(10)
        ctx.destroy(linger=0)
    return {
        "rate_hz": rate,
        "messages": len(lat),
        "hops": 3,
        "processes": 4,
        "latency_us": {
            "count": len(lat),
            "p50": _pct(lat, 0.5),
            "p99": _pct(lat, 0.99),
            "p999": _pct(lat, 0.999),
            "max": lat[-1] / 1000.0 if lat else 0.0,
        },
    }
