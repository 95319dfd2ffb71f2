"""The real supervisor process halts on its own when a portfolio snapshot breaches the daily
loss limit, says which guardrail did it in `status`, and shrugs off a malformed snapshot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from protocol import codec
from protocol.endpoints import endpoint
from protocol.messages import PortfolioSnapshot
from services.runtime import client
from tests.kit import eventually

REPO = Path(__file__).resolve().parents[2]


class FakePortfolio:
    """Binds the portfolio PUB and publishes `frame` every 50 ms (a SUB joins late)."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(endpoint(run_dir, "portfolio"))
        self.frame: bytes | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def publish(self, frame: bytes | None) -> None:
        with self.lock:
            self.frame = frame

    def loop(self) -> None:
        while not self.stopping.wait(0.05):
            with self.lock:
                frame = self.frame
            if frame is not None:
                self.pub.send(frame)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.pub.close(0)
        self.ctx.term()


def snapshot(realized: int, fees: int) -> PortfolioSnapshot:
    return PortfolioSnapshot(
        seq=1,
        ts_ns=time.time_ns(),
        exec_seq=0,
        cash=100_000_000 + realized - fees,
        equity=100_000_000 + realized - fees,
        realized=realized,
        unrealized=0,
        fees=fees,
        taxes=0,
        positions=[],
    )


def call(run: Path, command: str) -> Any:
    return client.call(client.ctl_address(run, "supervisor"), command, timeout=3.0)


def test_daily_loss_breach_then_supervisor_halts_by_guardrail(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake = FakePortfolio(run)
    env = {
        **os.environ,
        "QTS_RUNTIME__VAR_DIR": str(tmp_path),
        "QTS_SUPERVISOR__ACKNOWLEDGERS": "[]",
        "QTS_GUARDRAILS__MAX_DAILY_LOSS": "10000",
    }
    proc = subprocess.Popen([sys.executable, "-m", "services.supervisor"], env=env, cwd=REPO)
    try:
        eventually(lambda: call(run, "ping"))
        # a malformed snapshot is counted and dropped; the supervisor stays up and ACTIVE
        fake.publish(b"\x00not msgpack")
        eventually(lambda: call(run, "ping")["counters"].get("bad_frames.portfolio", 0) >= 1)
        # a loss at the limit is not a breach
        fake.publish(codec.encode(snapshot(realized=-9_000, fees=1_000)))
        # the absence of a firing: wait until 6 snapshots (300 ms, 3 evaluations) were taken
        eventually(lambda: call(run, "ping")["counters"].get("portfolio_snapshots", 0) >= 6)
        status = call(run, "status")
        assert status["state"] == "ACTIVE"
        assert status["guardrails"]["daily_loss"]["fired"] is False

        fake.publish(codec.encode(snapshot(realized=-9_000, fees=1_001)))
        status = eventually(lambda: (s := call(run, "status"))["state"] == "HALTED" and s)
        assert status["by"] == "guardrail:daily_loss"
        assert "10,001 KRW exceeds 10,000 KRW" in status["reason"]
        fired = status["guardrails"]["daily_loss"]
        assert fired["fired"] is True and fired["at_ns"] > 0
        assert fired["limit"] == {"max_daily_loss": 10_000}
        assert fired["last"] == status["reason"]
        assert status["guardrails"]["drawdown"]["fired"] is False
        persisted = json.loads((tmp_path / "state" / "trading_state.json").read_text())
        assert (persisted["state"], persisted["by"]) == ("HALTED", "guardrail:daily_loss")
        # halted once: the breach persists but the state is already at the action
        seen = call(run, "ping")["counters"]["portfolio_snapshots"]
        eventually(lambda: call(run, "ping")["counters"]["portfolio_snapshots"] >= seen + 6)
        assert call(run, "status")["epoch"] == status["epoch"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        fake.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
