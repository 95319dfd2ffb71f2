"""The kill switch under stress (issue 3): a halt in the middle of a burst of orders, and a halt
while execution is down. Orders rest at the venue (pulse passive), so there is work to cancel."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.kit import REPO, System, eventually

BURST = {
    "STRATEGY_SCOPE": "pulse",
    "QTS_STRATEGY__PULSE_EVERY": "2",
    "QTS_STRATEGY__PULSE_PASSIVE_TICKS": "2",
    "QTS_OBSERVER__RATE_HZ": "1500",
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sys_ = System(tmp_path_factory.mktemp("qts-halt"), **BURST)
    sys_.start()
    yield sys_
    sys_.stop()


def open_at_venue(system: System) -> int:
    return int(system.call("venue", "balance")["open_orders"])


def venue_orders(system: System) -> list[dict[str, Any]]:
    return list(system.call("venue", "orders")["orders"])


def supervisorctl(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(system.conf), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_halt_in_a_burst_leaves_nothing_open_and_nothing_new_at_the_venue(
    system: System,
) -> None:
    eventually(lambda: open_at_venue(system) >= 20, timeout=20, message="a burst of orders")
    data = system.call("supervisor", "halt", {"reason": "burst test", "by": "test"}, timeout=5)
    halted_ns = time.time_ns()
    assert all(a["acked"] for a in data["acks"].values()), data["acks"]
    assert data["execution"]["halt_cancels_sent"] >= 20
    eventually(lambda: open_at_venue(system) == 0, timeout=10, message="venue flat")
    count = len(venue_orders(system))
    seq = system.call("observer", "stats")["seq"]
    eventually(
        lambda: system.call("observer", "stats")["seq"] > seq + 1000,
        timeout=10,
        message="market data keeps flowing while halted",
    )
    assert len(venue_orders(system)) == count
    assert open_at_venue(system) == 0
    # nothing was sent after the halt: every order the venue has (it may still have been
    # working through its queue when the halt answered) was journaled before the answer
    journal = system.call("execution", "orders", {"limit": 1_000_000})["orders"]
    sent_late = [o for o in journal if o["broker_order_no"] and o["created_ns"] > halted_ns]
    assert not sent_late, sent_late[:3]
    assert len([o for o in journal if o["broker_order_no"]]) == count


def test_halt_while_execution_is_down_is_refused_then_applied_on_its_return(
    system: System,
) -> None:
    system.call("supervisor", "resume", {"reason": "next test", "by": "test"}, timeout=5)
    eventually(lambda: open_at_venue(system) >= 10, timeout=20, message="orders resting")
    assert supervisorctl(system, "stop", "qts:execution").returncode == 0
    proc = system.ctl("halt", "--reason", "execution is down", check=False)
    assert proc.returncode != 0
    assert "NOT_ACKNOWLEDGED" in proc.stderr and "execution" in proc.stderr
    assert system.call("supervisor", "status")["state"] == "HALTED"
    assert supervisorctl(system, "start", "qts:execution").returncode == 0
    # execution comes back, reconciles, hears HALTED and cancels what it left open
    eventually(lambda: open_at_venue(system) == 0, timeout=20, message="venue flat")
    ping = system.call("execution", "ping")
    assert ping["state"] == "HALTED" and ping["status"] == "ready"
