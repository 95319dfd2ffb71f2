"""The observer service fed by the reference external Observer, a real separate process, over a
Unix socket and over ZeroMQ ipc://: normal flow, the Observer killed and restarted, injected gaps,
malformed frames, a slow consumer, and a handshake with no common version."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from protocol import codec
from protocol.endpoints import endpoint
from protocol.enums import MarketPhase
from protocol.messages import Book, Instrument, PhaseChanged, Trade
from services.observer.replay import write_recording
from services.observer.synthetic import SyntheticSource
from services.runtime import client
from services.runtime.settings import ObserverSettings
from tests.kit import REPO, System, eventually

SYMBOLS = {"005930", "000660", "035420", "247540"}
Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture(params=["unix", "ipc"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def listen_address(tmp_path: Path, transport: str) -> str:
    return f"unix://{tmp_path}/obs.sock" if transport == "unix" else f"ipc://{tmp_path}/obs"


@pytest.fixture
def reference(tmp_path: Path, transport: str, procs: list[subprocess.Popen[bytes]]) -> Start:
    def start(*args: str) -> subprocess.Popen[bytes]:
        with (tmp_path / "ref.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.observer.reference",
                    "--listen",
                    listen_address(tmp_path, transport),
                    *args,
                ],
                cwd=REPO,
                stderr=log,
            )
        procs.append(proc)
        return proc

    return start


@pytest.fixture
def observer(tmp_path: Path, transport: str, procs: list[subprocess.Popen[bytes]]) -> Start:
    def start(**env: str) -> subprocess.Popen[bytes]:
        with (tmp_path / "observer.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.observer"],
                env={
                    **os.environ,
                    "QTS_RUNTIME__VAR_DIR": str(tmp_path),
                    "QTS_SESSION__CLOCK": "always_open",
                    "OBSERVER_ENDPOINT": listen_address(tmp_path, transport),
                    "QTS_OBSERVER__RECONNECT_MAX_MS": "500",
                    "QTS_OBSERVER__FEED_SILENCE_MS": "1500",
                    **env,
                },
                cwd=REPO,
                stderr=log,
            )
        procs.append(proc)
        eventually(lambda: stats(tmp_path), message="observer answers stats")
        return proc

    return start


def stats(tmp_path: Path) -> dict[str, Any]:
    out: dict[str, Any] = client.call(
        client.ctl_address(tmp_path / "run", "observer"), "stats", None, 1.0
    )["external"]
    return out


def live_with(tmp_path: Path, **at_least: int) -> Callable[[], dict[str, Any]]:
    """A condition: the feed is live, nothing is stale and each counter is at least its value."""

    def check() -> dict[str, Any]:
        s = stats(tmp_path)
        ok = s["state"] == "live" and not s["stale"] and s["last_event_age_ms"] is not None
        ok = ok and all(s["counters"].get(k, 0) >= v for k, v in at_least.items())
        return s if ok else {}

    return check


def feed_down(tmp_path: Path) -> dict[str, Any]:
    s = stats(tmp_path)
    return s if s["state"] != "live" and len(s["stale"]) == len(SYMBOLS) else {}


def events_grow(tmp_path: Path, by: int = 200) -> None:
    before = stats(tmp_path)["counters"]["events"]
    eventually(
        lambda: stats(tmp_path)["counters"]["events"] >= before + by, message="events flowing"
    )


def test_normal_flow_then_normalised_md_published_gap_free(
    tmp_path: Path, reference: Start, observer: Start
) -> None:
    reference("--rate", "2000", "--deltas", "--vi-every", "150")
    observer()
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        sub.connect(endpoint(tmp_path / "run", "md"))
        decode = codec.decoder("md").decode
        got: list[Any] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (
            {m.symbol for m in got if isinstance(m, Instrument)} == SYMBOLS
            and sum(isinstance(m, Trade) for m in got) > 500
            and any(isinstance(m, PhaseChanged) and m.phase is MarketPhase.VI for m in got)
        ):
            if sub.poll(200):
                got.append(decode(sub.recv()))
    finally:
        sub.close()
    assert {m.symbol for m in got if isinstance(m, Instrument)} == SYMBOLS
    assert {m.symbol for m in got if isinstance(m, Trade)} <= SYMBOLS
    assert any(isinstance(m, Book) and m.bids and m.asks for m in got)
    assert any(isinstance(m, PhaseChanged) and m.symbol and m.phase is MarketPhase.VI for m in got)
    seqs = [m.seq for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # our own stream: no hole
    s = eventually(
        lambda: (s := live_with(tmp_path)()) and s["rate_per_s"] > 0 and s, message="live, rate"
    )
    assert s["feed_id"] == "reference" and s["protocol"] == 1
    c = s["counters"]
    assert (c["bad_frames"], c["gaps"], c["duplicates"], c["deltas_dropped"]) == (0, 0, 0, 0)


def test_observer_killed_and_restarted_then_reconnects_reports_gap_recovers(
    tmp_path: Path, reference: Start, observer: Start
) -> None:
    ref = reference("--rate", "1000")
    observer()
    eventually(live_with(tmp_path, events=100), message="live")
    ref.send_signal(signal.SIGKILL)
    ref.wait(5)
    down = eventually(lambda: feed_down(tmp_path), message="feed down and every symbol stale")
    assert down["counters"]["stale_marks"] >= 4
    reference("--rate", "1000")
    s = eventually(live_with(tmp_path, connects=2, gaps=1, snapshot_requests=2), 15, message="back")
    assert s["session"] != down["session"]
    events_grow(tmp_path)


def test_gap_injected_then_snapshot_requested_and_served(
    tmp_path: Path, reference: Start, observer: Start
) -> None:
    reference("--rate", "2000", "--deltas", "--gap-every", "400")
    observer()
    eventually(live_with(tmp_path, gaps=2, snapshot_requests=3), 15, message="gaps and snapshots")
    assert "served snapshot 2" in (tmp_path / "ref.log").read_text()
    events_grow(tmp_path)


def test_malformed_frames_then_counted_flood_reported_stream_continues(
    tmp_path: Path, reference: Start, observer: Start
) -> None:
    reference("--rate", "2000", "--bad-frame-every", "50")
    observer(QTS_OBSERVER__BAD_FRAME_FLOOD="5", QTS_OBSERVER__BAD_FRAME_WINDOW_S="5")
    s = eventually(live_with(tmp_path, bad_frames=10, bad_frame_floods=1), 15, message="bad")
    assert s["counters"]["gaps"] == 0  # a dropped bad frame is not a lost message
    events_grow(tmp_path)
    assert "flood of bad frames" in (tmp_path / "observer.log").read_text()


def test_handshake_without_common_version_then_clear_error_and_process_stays_up(
    tmp_path: Path, reference: Start, observer: Start
) -> None:
    reference("--versions", "2,3")
    proc = observer()
    s = eventually(lambda: (s := stats(tmp_path))["state"] == "rejected" and s, message="rejected")
    assert "no common protocol version" in s["detail"]
    assert "[2, 3]" in s["detail"] and "QTS speaks [1]" in s["detail"]
    assert proc.poll() is None
    eventually(
        lambda: "handshake failed" in (tmp_path / "observer.log").read_text(), message="logged"
    )


def test_slow_consumer_then_observer_drops_qts_sees_gap_and_recovers(
    tmp_path: Path, transport: str, reference: Start, observer: Start
) -> None:
    reference("--rate", "20000", "--max-buffer", "65536")  # ipc: the PUB's SNDHWM is 655
    proc = observer(QTS_RUNTIME__RCVHWM="1000")
    eventually(live_with(tmp_path, events=1000), message="live")
    proc.send_signal(signal.SIGSTOP)  # QTS reads nothing: the Observer's buffer for it fills
    time.sleep(1.0)
    proc.send_signal(signal.SIGCONT)
    s = eventually(live_with(tmp_path, gaps=1), 15, message="gap seen and recovered")
    assert s["counters"]["gap_messages"] > 1000
    events_grow(tmp_path)


def test_whole_system_on_external_observer_then_trades_status_shows_source_and_stale_halts(
    tmp_path: Path, transport: str, reference: Start
) -> None:
    """QTS under supervisord on the reference Observer: pulse trades on its data, `qts-ctl
    status` shows the source's line, and the Observer's death halts trading (stale_md)."""
    ref = reference("--rate", "400")
    system = System(
        tmp_path / "qts",
        STRATEGY_SCOPE="pulse",
        QTS_STRATEGY__PULSE_EVERY="4",
        OBSERVER_ENDPOINT=listen_address(tmp_path, transport),
        QTS_SESSION__CLOCK="always_open",
        QTS_GUARDRAILS__STALE_MD_MS="2000",
    )
    try:
        system.start()
        eventually(
            lambda: any(
                o["status"] == "FILLED" for o in system.call("execution", "orders")["orders"]
            ),
            timeout=30,
            message="pulse fills on the external Observer's data",
        )
        status = eventually(
            lambda: (
                (s := system.ctl_json("status"))["services"]["observer"]["detail"].find(" live, ")
                >= 0
                and s
            ),
            message="observer detail shows the live source",
        )
        detail = status["services"]["observer"]["detail"]
        assert detail.startswith(listen_address(tmp_path, transport)) and "ev/s" in detail
        assert status["state"] == "ACTIVE"
        ref.send_signal(signal.SIGKILL)
        ref.wait(5)
        eventually(
            lambda: system.call("supervisor", "status")["state"] == "HALTED",
            timeout=20,
            message="stale market data halts trading",
        )
        eventually(
            lambda: " disconnected" in system.ctl_json("status")["services"]["observer"]["detail"],
            message="status shows the source down",
        )
        assert "stale_md" in system.ctl("status").stdout  # the guardrail that fired
    finally:
        system.stop()


def test_recording_served_then_every_recorded_trade_published_in_order(
    tmp_path: Path, reference: Start, observer: Start
) -> None:
    src = SyntheticSource(ObserverSettings().symbols, seed=3, book_every=2)
    recorded = [*src.instruments(), *itertools.islice(src.events(), 600)]
    write_recording(tmp_path / "day.qtsrec.gz", recorded)
    observer()
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    decode = codec.decoder("md").decode
    got: list[Any] = []
    try:
        sub.connect(endpoint(tmp_path / "run", "md"))
        assert sub.poll(5000), "the observer publishes its phase every second"
        reference("--recording", str(tmp_path / "day.qtsrec.gz"), "--rate", "3000", "--wait-client")
        deadline = time.monotonic() + 20
        want = sum(isinstance(m, Trade) for m in recorded)
        while time.monotonic() < deadline and sum(isinstance(m, Trade) for m in got) < want:
            if sub.poll(200):
                got.append(decode(sub.recv()))
    finally:
        sub.close()

    def key(m: Any) -> tuple[Any, ...]:
        if isinstance(m, Trade):
            return (m.symbol, m.exch_ns, m.price, m.qty, m.aggressor, m.cum_volume)
        return (m.symbol, m.exch_ns, m.bids, m.asks)

    assert [key(m) for m in got if isinstance(m, Trade)] == [
        key(m) for m in recorded if isinstance(m, Trade)
    ]
    books = {str(key(m)) for m in got if isinstance(m, Book)}
    assert all(str(key(m)) in books for m in recorded if isinstance(m, Book))
    assert stats(tmp_path)["counters"]["gaps"] == 0
