"""A broker that hangs (the venue process stopped with SIGSTOP: connected, never answering)
must not stall execution: its reconciliation queries run on a thread of their own, so
heartbeats, halts and their acknowledgements keep flowing while the queries time out."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from services.ctl.supervisord import Supervisord
from tests.fault.chaos import pid_of
from tests.kit import System, eventually


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sys_ = System(
        tmp_path_factory.mktemp("qts-stuck"),
        STRATEGY_SCOPE="pulse",
        QTS_STRATEGY__PULSE_EVERY="3",
        QTS_OBSERVER__RATE_HZ="300",
        QTS_EXECUTION__RECONCILE_INTERVAL_S="0.5",  # a query is almost always under way
        # each query waits this long for the stopped venue: a loop that asked itself would
        # be blocked this long (heartbeats 100 ms apart would age past it)
        QTS_BROKER__REQUEST_TIMEOUT_MS="1500",
        QTS_GUARDRAILS__BROKER_DISCONNECT_ENABLED="false",  # this test is about the loop
    )
    sys_.start()
    yield sys_
    sys_.stop()


def test_a_hung_broker_does_not_stall_heartbeats_or_a_halt(system: System) -> None:
    sup = Supervisord(system.conf)
    venue = pid_of(sup, "venue")
    eventually(
        lambda: system.call("execution", "ping")["counters"].get("reconciliations", 0) >= 2,
        timeout=20,
        message="periodic reconciliations",
    )
    os.kill(venue, signal.SIGSTOP)
    try:
        time.sleep(1.0)  # queries are now hanging on the stopped venue
        worst = 0.0
        for _ in range(20):  # 2 s of samples while queries block for 1.5 s each
            hb = system.call("supervisor", "status")["services"]["execution"]
            worst = max(worst, hb["age_ms"])
            time.sleep(0.1)
        assert worst < 1_000, f"execution's heartbeat was {worst} ms old"
        t0 = time.monotonic()
        data = system.call("supervisor", "halt", {"reason": "stuck broker", "by": "test"}, 5)
        assert data["acks"]["execution"]["acked"], data
        assert time.monotonic() - t0 < 2.0
        eventually(
            lambda: system.call("execution", "ping")["counters"].get("reconcile_failures", 0) >= 1,
            timeout=10,
            message="the hung queries time out and are counted as failures",
        )
    finally:
        os.kill(venue, signal.SIGCONT)
    eventually(
        lambda: system.call("venue", "balance")["open_orders"] == 0,
        timeout=15,
        message="the halt's cancels reach the venue once it answers again",
    )
