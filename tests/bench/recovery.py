"""Restart recovery and memory: how long each service takes to be back and ready after a
SIGKILL while pulse trades (supervisord restarts it), and each service's resident memory."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from services.ctl.supervisord import Supervisord
from tests.kit import System, eventually

RESTARTED = ("observer", "strategy", "risk", "execution", "portfolio", "performance", "venue")


def rss_kb(pid: int) -> dict[str, int]:
    """Resident memory now (VmRSS) and the peak so far (VmHWM), in kB, from /proc."""
    out = {"rss_kb": 0, "peak_kb": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_kb"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                out["peak_kb"] = int(line.split()[1])
    except OSError:
        pass
    return out


def pids(conf: Path) -> dict[str, int]:
    sup = Supervisord(conf)
    return {
        name: int(sup.call("supervisor.getProcessInfo", f"qts:{name}")["pid"])
        for name in (*RESTARTED, "supervisor")
    }


def memory(conf: Path) -> dict[str, dict[str, int]]:
    return {name: rss_kb(pid) for name, pid in pids(conf).items()}


def _ready(system: System, name: str, pid: int) -> bool:
    ping = system.call(name, "ping", timeout=0.5)
    return bool(ping["pid"] == pid and ping["status"] == "ready")


def run_restarts() -> dict[str, Any]:
    """Kill each service once with SIGKILL and time until the new process answers `ready`
    (execution: reconciled with the venue) and every service is alive again."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="qts-restart-") as tmp:
        system = System(
            Path(tmp),
            STRATEGY_SCOPE="pulse",
            QTS_STRATEGY__PULSE_EVERY="4",
            QTS_OBSERVER__RATE_HZ="500",
            LOG_LEVEL="WARNING",
        )
        try:
            system.start()
            sup = Supervisord(system.conf)
            for name in RESTARTED:
                time.sleep(0.5)
                old = int(sup.call("supervisor.getProcessInfo", f"qts:{name}")["pid"])
                t0 = time.monotonic()
                os.kill(old, signal.SIGKILL)
                new = eventually(
                    lambda n=name, o=old: (
                        (p := int(sup.call("supervisor.getProcessInfo", f"qts:{n}")["pid"]))
                        not in (0, o)
                        and p
                    ),
                    timeout=30,
                    interval=0.01,
                    message=f"supervisord restarts {name}",
                )
                eventually(
                    lambda n=name, p=new: _ready(system, n, p),
                    timeout=30,
                    interval=0.01,
                    message=f"{name} ready again",
                )
                out[name] = round(time.monotonic() - t0, 2)
        finally:
            system.stop()
    return {"recovered_s": out}


def print_restarts(result: dict[str, Any]) -> None:
    print("\nrestart recovery (SIGKILL -> supervisord restart -> the new process ready):")
    for name, seconds in result["recovered_s"].items():
        print(f"  {name:<12}{seconds:>6.2f} s")


def print_memory(title: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    print(f"\nmemory ({title}): RSS MB at start -> at end (peak)")
    for name in after:
        a, b = before.get(name, {}), after[name]
        print(
            f"  {name:<12}{a.get('rss_kb', 0) / 1024:>7.1f} -> {b['rss_kb'] / 1024:>6.1f}"
            f"  ({b['peak_kb'] / 1024:.1f})"
        )
