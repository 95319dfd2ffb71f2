"""The real supervisor process halts on its own when a portfolio snapshot breaches the daily
loss limit, says which guardrail did it in `status`, and shrugs off a malformed snapshot; with
real execution and venue processes it halts on a broker gone longer than the grace, reduces on
reconciliation differences, and a restarted supervisor keeps the day's peak equity."""

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
from protocol.enums import Side
from protocol.messages import PortfolioSnapshot
from protocol.venue import VenueAck, VenueNewOrder
from services.runtime import client
from tests.kit import eventually, qts_ctl_bin

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


# ---------------------------------------------------------------------------- more processes
def start(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", f"services.{module}"], env=env, cwd=REPO)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def execution_counters(run: Path) -> dict[str, int]:
    counters: dict[str, int] = call(run, "status")["services"]["execution"]["counters"]
    return counters


def test_broker_silent_under_grace_then_quiet_and_gone_beyond_grace_then_halts(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    env = {
        **os.environ,
        "QTS_RUNTIME__VAR_DIR": str(tmp_path),
        "QTS_SUPERVISOR__ACKNOWLEDGERS": "[]",
        "QTS_GUARDRAILS__BROKER_DISCONNECT_GRACE_MS": "3000",
        "QTS_BROKER__REQUEST_TIMEOUT_MS": "300",  # a probe unanswered this long: down
    }
    sup = start("supervisor", env)
    procs = [sup]
    try:
        eventually(lambda: call(run, "ping"))
        venue = start("venue", env)
        procs.append(venue)
        procs.append(start("execution", env))
        eventually(lambda: call(run, "status")["services"]["execution"]["status"] == "ready")
        eventually(lambda: execution_counters(run).get("broker_down_ms") == 0)

        # the venue stops answering (SIGSTOP: connected, but no answer) for less than the grace
        venue.send_signal(signal.SIGSTOP)
        eventually(lambda: execution_counters(run)["broker_down_ms"] >= 1_500)
        venue.send_signal(signal.SIGCONT)
        eventually(lambda: execution_counters(run)["broker_down_ms"] == 0)
        status = call(run, "status")
        assert status["state"] == "ACTIVE"
        assert status["guardrails"]["broker_disconnect"]["fired"] is False

        # the venue process is gone (the order socket loses its connection) beyond the grace
        venue.kill()
        venue.wait()
        status = eventually(lambda: (s := call(run, "status"))["state"] == "HALTED" and s)
        assert status["by"] == "guardrail:broker_disconnect"
        fired = status["guardrails"]["broker_disconnect"]
        assert fired["figures"]["broker_down_ms"] > 3_000
        assert fired["figures"]["broker_disconnect_grace_ms"] == 3_000
        assert "broker not answering execution for" in fired["last"]
        # the operator's view: the firing and its figures in `qts-ctl status`
        out = subprocess.run(
            [qts_ctl_bin(), "status"], env=env, cwd=REPO, text=True, capture_output=True
        ).stdout
        assert "guardrails fired:" in out and "broker_disconnect" in out
        assert "(grace 3.0 s)" in out
    finally:
        stop_all(procs)


def test_reconcile_differences_beyond_limit_then_reducing(tmp_path: Path) -> None:
    """An order placed at the venue behind execution's back is a difference its periodic
    reconciliation finds (and adopts); one past the limit moves the state to REDUCING."""
    run = tmp_path / "run"
    env = {
        **os.environ,
        "QTS_RUNTIME__VAR_DIR": str(tmp_path),
        "QTS_SUPERVISOR__ACKNOWLEDGERS": "[]",
        "QTS_GUARDRAILS__MAX_RECONCILE_DIFFERENCES": "1",
        "QTS_EXECUTION__RECONCILE_INTERVAL_S": "0.3",
    }
    procs = [start("supervisor", env)]
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    try:
        eventually(lambda: call(run, "ping"))
        procs += [start("observer", env), start("venue", env), start("execution", env)]
        eventually(lambda: call(run, "status")["services"]["execution"]["status"] == "ready")
        dealer.connect(endpoint(run, "venue"))
        replies = codec.decoder("venue_reply")

        def place(req_id: int) -> None:
            # below the market (within the daily price limit): it rests, only the venue knows it
            order = VenueNewOrder(
                req_id=req_id, symbol="005930", side=Side.BUY, qty=1, price=60_000
            )

            # the venue learns the symbol from the observer's reference data within a second
            def accepted() -> bool:
                dealer.send_multipart([b"", codec.encode(order)])
                assert dealer.poll(2000)
                ack = replies.decode(dealer.recv_multipart()[-1])
                assert isinstance(ack, VenueAck)
                return ack.ok

            eventually(accepted)

        place(1)
        eventually(lambda: execution_counters(run).get("reconcile_differences", 0) == 1)
        status = call(run, "status")
        assert status["state"] == "ACTIVE"  # at the limit, not past it
        assert status["guardrails"]["reconcile_differences"]["fired"] is False

        place(2)
        status = eventually(lambda: (s := call(run, "status"))["state"] == "REDUCING" and s)
        assert status["by"] == "guardrail:reconcile_differences"
        figures = status["guardrails"]["reconcile_differences"]["figures"]
        assert figures == {"differences": 2, "max_reconcile_differences": 1}
    finally:
        dealer.close(0)
        ctx.term()
        stop_all(procs)


def test_supervisor_restarted_the_same_day_then_keeps_the_days_peak(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake = FakePortfolio(run)
    env = {
        **os.environ,
        "QTS_RUNTIME__VAR_DIR": str(tmp_path),
        "QTS_SUPERVISOR__ACKNOWLEDGERS": "[]",
        "QTS_GUARDRAILS__MAX_DRAWDOWN": "10000",
        "QTS_GUARDRAILS__DAY_STATE_SAVE_INTERVAL_MS": "100",
    }
    day_file = tmp_path / "state" / "guardrails.json"
    procs = [start("supervisor", env)]
    try:
        eventually(lambda: call(run, "ping"))
        fake.publish(codec.encode(snapshot(realized=50_000, fees=0)))  # the peak: 100,050,000
        eventually(lambda: day_file.exists() and json.loads(day_file.read_text())["peak_equity"])
        assert json.loads(day_file.read_text())["peak_equity"] == 100_050_000
        procs[0].kill()  # no goodbye: what is on disk is what the next one gets
        procs[0].wait()
        fake.publish(codec.encode(snapshot(realized=40_000, fees=1)))  # 10,001 below the peak
        procs.append(start("supervisor", env))
        status = eventually(lambda: (s := call(run, "status"))["state"] == "HALTED" and s)
        assert status["by"] == "guardrail:drawdown"
        figures = status["guardrails"]["drawdown"]["figures"]
        assert (figures["peak_equity"], figures["drawdown"]) == (100_050_000, 10_001)
    finally:
        fake.close()
        stop_all(procs)
