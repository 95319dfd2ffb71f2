"""Halt propagation: from `halt` to every service's acknowledgement, and to the last open order
cancelled at the venue, over repeated halts with orders resting at the venue."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from tests.kit import System, eventually


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": _pct(values, 0.5),
        "p99": _pct(values, 0.99),
        "max": round(max(values), 2) if values else 0.0,
    }


def run_halts(halts: int) -> dict[str, Any]:
    acked: list[float] = []
    execution_acked: list[float] = []
    cancelled: list[float] = []
    cancels = 0
    with tempfile.TemporaryDirectory(prefix="qts-halt-") as tmp:
        system = System(
            Path(tmp),
            STRATEGY_SCOPE="pulse",
            QTS_STRATEGY__PULSE_EVERY="2",
            QTS_STRATEGY__PULSE_PASSIVE_TICKS="3",
            QTS_OBSERVER__RATE_HZ="400",
            LOG_LEVEL="WARNING",
        )
        try:
            system.start()
            for _ in range(halts):
                eventually(
                    lambda: system.call("venue", "balance")["open_orders"] >= 3,
                    timeout=20,
                    message="orders resting at the venue",
                )
                t0 = time.monotonic()
                data = system.call(
                    "supervisor", "halt", {"reason": "halt benchmark", "by": "bench"}, timeout=5
                )
                acked.append(max(a["ms"] for a in data["acks"].values()))
                execution_acked.append(data["acks"]["execution"]["ms"])
                cancels += data["execution"]["halt_cancels_sent"]
                eventually(
                    lambda: system.call("venue", "balance")["open_orders"] == 0,
                    timeout=10,
                    interval=0.002,
                    message="venue has no open order",
                )
                cancelled.append((time.monotonic() - t0) * 1000)
                system.call(
                    "supervisor", "resume", {"reason": "halt benchmark", "by": "bench"}, timeout=5
                )
        finally:
            system.stop()
    return {
        "halts": halts,
        "cancels_sent": cancels,
        "all_acknowledged_ms": _summary(acked),
        "execution_acknowledged_ms (cancels sent)": _summary(execution_acked),
        "venue_flat_ms": _summary(cancelled),
    }


def print_halts(result: dict[str, Any]) -> None:
    print(f"\nhalt propagation over {result['halts']} halts ({result['cancels_sent']} cancels):")
    print(f"{'measure':<42}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for key, h in result.items():
        if isinstance(h, dict):
            print(f"{key:<42}{h['p50']:>9.1f}{h['p99']:>9.1f}{h['max']:>9.1f}")
