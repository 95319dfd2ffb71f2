"""The supervisor as a real process: control broadcast, acknowledged halt, persisted state that
survives SIGKILL, malformed heartbeat frames counted, resume bumps the epoch."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from protocol import codec
from protocol.endpoints import endpoint
from protocol.enums import TradingState
from protocol.messages import PROTOCOL_VERSION, Heartbeat, TradingStateUpdate
from services.runtime import client
from tests.kit import eventually

REPO = Path(__file__).resolve().parents[2]


class FakeService:
    """Subscribes to control and heartbeats with epoch_ack = the last epoch it heard."""

    def __init__(self, run_dir: Path) -> None:
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint(run_dir, "control"))
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(endpoint(run_dir, "heartbeat"))
        self.decoder = codec.decoder("control")
        self.updates: list[tuple[float, TradingStateUpdate]] = []
        self.epoch = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        seq = 0
        next_hb = 0.0
        while not self.stopping.is_set():
            if self.sub.poll(10):
                msg = self.decoder.decode(self.sub.recv())
                assert isinstance(msg, TradingStateUpdate)
                self.updates.append((time.monotonic(), msg))
                if msg.epoch != self.epoch:
                    self.epoch = msg.epoch
                    next_hb = 0.0  # acknowledge at once
            if time.monotonic() >= next_hb:
                seq += 1
                self.push.send(
                    codec.encode(
                        Heartbeat(
                            service="fake",
                            pid=os.getpid(),
                            protocol=PROTOCOL_VERSION,
                            seq=seq,
                            started_ns=1,
                            ts_ns=time.time_ns(),
                            epoch_ack=self.epoch,
                            status="ready",
                        )
                    )
                )
                next_hb = time.monotonic() + 0.1

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.sub.close(0)
        self.push.close(0)
        self.ctx.term()


def start(var: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "QTS_RUNTIME__VAR_DIR": str(var),
        "QTS_SUPERVISOR__ACKNOWLEDGERS": '["fake"]',
    }
    return subprocess.Popen([sys.executable, "-m", "services.supervisor"], env=env, cwd=str(REPO))


@pytest.fixture
def var(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def call(run: Path, command: str, args: dict[str, Any] | None = None) -> Any:
    return client.request(client.ctl_address(run, "supervisor"), command, args, timeout=3.0)


def test_supervisor_process_halts_persists_survives_kill_and_resumes(var: Path) -> None:
    run = var / "run"
    proc = start(var)
    fake: FakeService | None = None
    try:
        eventually(lambda: call(run, "ping").ok)
        fake = FakeService(run)
        # control: ACTIVE epoch 1, about every 100 ms
        eventually(lambda: len(fake.updates) >= 6)
        first = fake.updates[-5:]
        assert all(u.state is TradingState.ACTIVE and u.epoch == 1 for _, u in first)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(first)]
        assert 0.05 < sum(gaps) / len(gaps) < 0.2

        eventually(lambda: call(run, "status").data["services"]["fake"]["alive"])

        rep = call(run, "halt", {"reason": "drill", "by": "test"})
        assert rep.ok, rep.reason
        assert rep.data["state"] == "HALTED" and rep.data["epoch"] == 2
        assert rep.data["acks"]["fake"]["acked"] is True
        state = json.loads((var / "state" / "trading_state.json").read_text())
        assert (state["state"], state["epoch"], state["by"]) == ("HALTED", 2, "test")

        bad = call(run, "reduce", {"reason": "x"})
        assert not bad.ok and bad.code == "INVALID_TRANSITION"
        missing = call(run, "halt", {})
        assert not missing.ok and missing.code == "BAD_REQUEST"

        # SIGKILL: the restarted supervisor comes back HALTED with the same epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        proc = start(var)
        status = eventually(lambda: call(run, "status").data)
        assert (status["state"], status["epoch"]) == ("HALTED", 2)

        # a malformed heartbeat frame is counted and dropped
        fake.push.send(b"\x00not msgpack")
        eventually(lambda: call(run, "ping").data["counters"].get("bad_frames.heartbeat") == 1)

        eventually(lambda: call(run, "status").data["services"]["fake"]["epoch_ack"] == 2)
        rep = call(run, "resume", {"reason": "drill over", "by": "test"})
        assert rep.ok, rep.reason
        assert (rep.data["state"], rep.data["epoch"]) == ("ACTIVE", 3)
        eventually(lambda: fake.updates[-1][1].state is TradingState.ACTIVE)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if fake:
            fake.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
