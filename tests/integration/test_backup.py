"""Backups of a real system (issue 11): trade, back up online while trading, stop, wipe
var/state, restore, start again: the journal's orders and fills and the venue's book come back
identical and execution reconciles cleanly.

Prints the execution loop's answer times (ping round trips) with and without a backup running:
the figure for "the loop is never held", not an assertion.
"""

from __future__ import annotations

import json
import shutil
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from services.runtime import backup as bk
from services.runtime import client
from services.runtime.settings import BackupSettings
from tests.kit import System, eventually

PULSE = {
    "STRATEGY_SCOPE": "pulse",
    "QTS_STRATEGY__PULSE_EVERY": "4",
    "QTS_OBSERVER__RATE_HZ": "400",
    # scheduled backups every 3 s while the test trades (the venue's into execution's slot)
    "QTS_BACKUP__INTERVAL_S": "3",
    "QTS_BACKUP__AT_CLOSE": "false",
}


def orders(system: System) -> list[dict[str, Any]]:
    return list(system.call("execution", "orders", {"limit": 100_000})["orders"])


def fills(system: System) -> list[dict[str, Any]]:
    return list(system.call("execution", "fills")["fills"])


class PingTimer(threading.Thread):
    """Pings execution's ctl socket back to back; ping is answered by the loop itself, so a
    round trip is how long the loop took to get to it."""

    def __init__(self, system: System) -> None:
        super().__init__(daemon=True)
        self.address = client.ctl_address(system.var / "run", "execution")
        self.samples: list[tuple[float, float]] = []  # (monotonic at send, seconds)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            client.request(self.address, "ping", None, 5.0)
            self.samples.append((t0, time.monotonic() - t0))
            time.sleep(0.002)

    def between(self, start: float, end: float) -> list[float]:
        return [rtt * 1000 for t, rtt in self.samples if start <= t <= end]


def figures(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100) if len(ms) >= 2 else ms * 99
    return f"{name}: n={len(ms)} p50={q[49]:.2f} ms p99={q[98]:.2f} ms max={max(ms):.2f} ms"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sys_ = System(tmp_path_factory.mktemp("qts"), **PULSE)
    sys_.start()
    yield sys_
    sys_.stop()


def test_backup_online_while_trading_then_verified_and_loop_keeps_answering(
    system: System,
) -> None:
    eventually(lambda: len(fills(system)) >= 5, timeout=30, message="5 fills")
    pinger = PingTimer(system)
    pinger.start()
    time.sleep(1.0)
    fills_before = len(fills(system))
    t0 = time.monotonic()
    out = system.ctl_json("backup")
    t1 = time.monotonic()
    time.sleep(0.3)
    pinger.stop.set()
    pinger.join()

    dest = Path(out["dir"])
    assert dest.parent.parent == system.var / "backup"
    ex, venue = out["services"]["execution"], out["services"]["venue"]
    assert [f["path"] for f in ex["files"]][:1] == ["state/journal.db"]
    assert "state/guardrails.json" in [f["path"] for f in ex["files"]]  # the state files
    assert [f["path"] for f in venue["files"]] == ["state/venue.db"]
    assert ex["facts"]["journal_last_seq"] > 0 and ex["facts"]["fills"] >= fills_before
    assert {e["path"] for e in bk.verify(dest)} == {f["path"] for f in ex["files"] + venue["files"]}
    assert len(fills(system)) > fills_before  # trading went on
    print()
    print(figures("execution ping, no backup", pinger.between(0, t0)))
    print(figures("execution ping, during qts-ctl backup", pinger.between(t0, t1)))
    print(f"qts-ctl backup took {t1 - t0:.2f} s; execution copy {ex['duration_ms']} ms")


def test_scheduled_backups_put_both_services_in_one_slot(system: System) -> None:
    def both() -> list[Path]:
        return [
            d
            for d in bk.list_backups(system.var / "backup")
            if (d / "manifest.execution.json").exists() and (d / "manifest.venue.json").exists()
        ]

    found = eventually(both, timeout=20, message="a slot with both manifests")
    manifest = json.loads((found[0] / "manifest.venue.json").read_text())
    assert manifest["reason"] in ("schedule", "ctl")
    assert system.call("execution", "ping")["counters"]["backup_failures"] == 0


def test_restore_while_running_then_refused(system: System) -> None:
    some = bk.list_backups(system.var / "backup")[-1]
    proc = system.ctl("restore", str(some), check=False)
    assert proc.returncode != 0
    assert "services are running" in proc.stderr and "execution" in proc.stderr


def test_stop_wipe_restore_start_then_books_identical_and_reconciled(system: System) -> None:
    system.ctl("halt", "--reason", "backup test")
    eventually(
        lambda: (
            system.call("venue", "balance")["open_orders"] == 0
            and not system.call("execution", "orders", {"open_only": True})["orders"]
        ),
        timeout=20,
        message="no open order after the halt",
    )
    dest = Path(system.ctl_json("backup")["dir"])
    want_orders, want_fills = orders(system), fills(system)
    want_balance = system.call("venue", "balance")
    want_seq = system.call("execution", "events_since", {"seq": 0, "limit": 1})["last_seq"]
    assert want_fills and want_balance["holdings"]

    system.stop()
    shutil.rmtree(system.var / "state")
    out = json.loads(system.ctl("restore", str(dest), "--json").stdout)
    assert {"state/journal.db", "state/venue.db", "state/trading_state.json"} <= set(
        out["restored"]
    )
    system.start()

    eventually(
        lambda: system.call("execution", "ping")["status"] == "ready",
        timeout=30,
        message="execution reconciled",
    )
    assert system.ctl_json("status")["state"] == "HALTED"  # the restored state file
    assert orders(system) == want_orders
    assert fills(system) == want_fills
    balance = system.call("venue", "balance")
    assert (balance["cash"], balance["holdings"]) == (
        want_balance["cash"],
        want_balance["holdings"],
    )
    counters = system.call("execution", "ping")["counters"]
    assert counters.get("reconcile_differences", 0) == 0
    assert system.call("execution", "events_since", {"seq": 0, "limit": 1})["last_seq"] == want_seq


def test_restore_of_a_damaged_backup_then_refused_naming_the_file(make_system: Any) -> None:
    system = make_system()  # never started: nothing runs
    var = system.var
    (var / "state").mkdir(parents=True)
    (var / "state" / "trading_state.json").write_text('{"state": "HALTED"}')
    dest = var / "backup" / "2026-11-25" / "154000"
    sources = bk.Sources(files=("state/*.json",))
    bk.make_backup("execution", var, dest, sources, BackupSettings(), "close")
    (dest / "state" / "trading_state.json").write_text('{"state": "ACTIVE"}')  # damaged

    proc = system.ctl("restore", "2026-11-25/154000", check=False)  # relative to var/backup

    assert proc.returncode != 0
    assert "nothing restored" in proc.stderr and "state/trading_state.json" in proc.stderr
    assert json.loads((var / "state" / "trading_state.json").read_text()) == {"state": "HALTED"}
    # put right, the same command restores it
    (dest / "state" / "trading_state.json").write_text('{"state": "HALTED"}')
    (var / "state" / "trading_state.json").write_text("{}")
    out = system.ctl("restore", "2026-11-25/154000").stdout
    assert "restored from" in out and "state/trading_state.json" in out
    assert json.loads((var / "state" / "trading_state.json").read_text()) == {"state": "HALTED"}
