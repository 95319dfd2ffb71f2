"""The real observer process: paced synthetic md with gap-free seq, EndOfStream, done status,
a garbage ctl frame answered BAD_REQUEST, SIGTERM exits 0; an unknown endpoint exits 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from protocol import codec
from protocol.codes import CtlCode
from protocol.endpoints import ctl_name, endpoint
from protocol.messages import Book, CtlReply, EndOfStream, Instrument, PhaseChanged, Trade
from services.runtime import client, md_sync
from tests.kit import eventually

REPO = "/work/main"
decode_md = codec.decoder("md").decode


def eos_at(msgs: list[Any]) -> int | None:
    return next((i for i, m in enumerate(msgs) if isinstance(m, EndOfStream)), None)


def start(tmp_path: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.observer"],
        env={**os.environ, "QTS_RUNTIME__VAR_DIR": str(tmp_path), **env},
        cwd=REPO,
        stderr=subprocess.PIPE,
    )


def test_observer_when_max_events_then_gap_free_stream_and_done(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    proc = start(tmp_path, QTS_OBSERVER__RATE_HZ="2000", QTS_OBSERVER__MAX_EVENTS="500")
    ctl = client.ctl_address(run, "observer")
    try:
        eventually(lambda: client.call(ctl, "ping", timeout=0.5), message="observer up")
        sub.connect(endpoint(run, "md"))
        decode = codec.decoder("md").decode
        got: list[Any] = []
        deadline = time.monotonic() + 10
        # 500 events at 2,000/s outrun the 1 s instrument period: read on past the end of
        # stream until an Instrument comes (they keep coming for late joiners)
        while time.monotonic() < deadline and not (
            eos_at(got) is not None and any(isinstance(m, Instrument) for m in got)
        ):
            if sub.poll(200):
                got.append(decode(sub.recv()))

        # a late subscriber may miss the first few; from its first message on there is no gap
        seqs = [m.seq for m in got]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert len({m.stream for m in got}) == 1
        assert any(isinstance(m, Instrument) for m in got)
        assert any(isinstance(m, Trade) for m in got) and any(isinstance(m, Book) for m in got)
        end = eos_at(got)
        assert end is not None
        eos = got[end]
        assert isinstance(eos, EndOfStream) and eos.events == 500
        assert all(isinstance(m, Instrument) for m in got[end + 1 :])  # nothing else after

        ping = client.call(ctl, "ping")
        assert ping["status"] == "done"
        assert ping["detail"] == "source exhausted after 500 events"
        stats = client.call(ctl, "stats")
        assert stats["done"] is True and stats["events"] == 500
        assert set(stats["per_symbol"]) == {"005930", "000660", "035420", "247540"}

        # garbage on ctl: BAD_REQUEST, counted, still alive
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(endpoint(run, ctl_name("observer")))
        dealer.send_multipart([b"", b"\xc1garbage"])
        assert dealer.poll(2000), "no reply to a garbage ctl frame"
        reply = msgspec.msgpack.decode(dealer.recv_multipart()[-1], type=CtlReply)
        dealer.close()
        assert not reply.ok and reply.code == CtlCode.BAD_REQUEST
        assert client.call(ctl, "ping")["counters"]["bad_frames.ctl"] == 1
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [("tcp://host:1", b"expected 'stub'"), ("unix://relative.sock", b"must be absolute")],
)
def test_observer_when_bad_endpoint_then_exits_2_with_reason(
    tmp_path: Path, endpoint: str, reason: bytes
) -> None:
    proc = start(tmp_path, QTS_OBSERVER__ENDPOINT=endpoint)

    _, err = proc.communicate(timeout=10)

    assert proc.returncode == 2
    assert reason in err


# ---------------------------------------------------------------------------------- md_since


def start_logged(tmp_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """The observer with its log in a file (a pipe nobody reads could fill and block it)."""
    with open(tmp_path / f"observer-{time.monotonic_ns()}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.observer"],
            env={**os.environ, "QTS_RUNTIME__VAR_DIR": str(tmp_path), **env},
            cwd=REPO,
            stderr=log,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Subscriber:
    """A real SUB on md, every message through MdSync (what strategy and portfolio run)."""

    def __init__(self, run: Path, rcvhwm: int = 1_000) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context.instance()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint(run, "md"))
        self.got: list[Any] = []
        self.counters: dict[str, int] = {}
        fetch = md_sync.ctl_fetch(client.ctl_address(run, "observer"), self.ctx, timeout=1.0)
        self.sync = md_sync.MdSync(fetch, self.got.append, self.count)
        self.decode = codec.decoder("md").decode

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def read(self, until: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"not met; counters {self.counters}"
            if self.sub.poll(50):
                for _ in range(256):
                    try:
                        frame = self.sub.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.sync.live(self.decode(frame))
            self.sync.poll()

    def close(self) -> None:
        self.sub.close()


def test_md_since_when_asked_then_snapshot_and_bad_arguments_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = start_logged(tmp_path, QTS_OBSERVER__RATE_HZ="2000", QTS_OBSERVER__MAX_EVENTS="300")
    ctl = client.ctl_address(run, "observer")
    try:
        eventually(lambda: client.call(ctl, "stats", timeout=0.5)["done"], message="done")
        stats = client.call(ctl, "stats")

        now = client.call(ctl, "md_since", {"stream": 0, "seq": 0, "tail": 0})
        every = client.call(ctl, "md_since", {"stream": 0, "seq": 0, "limit": 100})
        bad = client.request(ctl, "md_since", {"stream": 0, "seq": -1})

        assert now["stream"] == stats["stream"] and now["snapshot"] is True
        assert now["frames"] == [] and now["base"] == now["seq"] >= stats["seq"]
        state = [decode_md(f) for f in now["state"]]
        last_trade = {m.symbol: m.price for m in state if isinstance(m, Trade)}
        assert last_trade == {s: v["last_price"] for s, v in stats["per_symbol"].items()}
        assert {m.symbol for m in state if isinstance(m, Instrument)} == set(last_trade)
        assert {m.symbol for m in state if isinstance(m, Book)} == set(last_trade)
        assert any(isinstance(m, EndOfStream) for m in state)
        # the whole stream is still held: from seq 1, in pages of 100
        assert every["base"] == 0 and every["state"] == [] and every["more"] is True
        assert [decode_md(f).seq for f in every["frames"]] == list(range(1, 101))
        assert not bad.ok and bad.code == CtlCode.BAD_REQUEST and "seq" in bad.reason
    finally:
        stop(proc)


def test_md_sync_when_slow_subscriber_overflows_then_every_message_recovered(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    # tiny queues on both sides: a subscriber that stops reading loses messages at once
    proc = start_logged(tmp_path, QTS_OBSERVER__RATE_HZ="5000", QTS_RUNTIME__SNDHWM="50")
    ctl = client.ctl_address(run, "observer")
    sub = Subscriber(run, rcvhwm=50)
    try:
        eventually(lambda: client.call(ctl, "ping", timeout=0.5), message="observer up")
        sub.read(lambda: len(sub.got) > 100)
        time.sleep(1.0)  # busy elsewhere: the observer drops what does not fit
        sub.read(lambda: sub.counters.get("md_gaps") and not sub.sync.recovering)
        mark = sub.got[-1].seq
        sub.read(lambda: sub.got[-1].seq > mark + 500)

        seqs = [m.seq for m in sub.got]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # every message, once, in order
        assert len({m.stream for m in sub.got}) == 1
        assert sub.counters["md_recovered"] > 0 and "md_lost" not in sub.counters
        print(f"\nslow subscriber: {sub.counters}")
    finally:
        sub.close()
        stop(proc)


def test_md_sync_when_observer_restarts_then_new_stream_followed_from_seq_1(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    ctl = client.ctl_address(run, "observer")
    sub = Subscriber(run)
    first = start_logged(tmp_path, QTS_OBSERVER__RATE_HZ="1000")
    second: subprocess.Popen[bytes] | None = None
    try:
        eventually(lambda: client.call(ctl, "ping", timeout=0.5), message="observer up")
        sub.read(lambda: len(sub.got) > 200)
        old = sub.got[-1].stream
        stop(first)
        second = start_logged(tmp_path, QTS_OBSERVER__RATE_HZ="1000")

        sub.read(
            lambda: sub.got[-1].stream != old and sub.got[-1].seq > 300 and not sub.sync.recovering
        )

        new = [m for m in sub.got if m.stream != old]
        # the slow joiner missed the new observer's first messages; MdSync fetched them
        assert [m.seq for m in new] == list(range(1, len(new) + 1))
        assert any(isinstance(m, Instrument) for m in new[:10])  # reference data first
        assert sub.counters["md_new_streams"] == 1 and "md_lost" not in sub.counters
        assert client.call(ctl, "ping")["counters"]["md_since_requests"] >= 1
        print(f"\nobserver restart: {sub.counters}")
    finally:
        sub.close()
        stop(first)
        if second is not None:
            stop(second)


def test_marks_stream_conflates_trades_and_passes_reference_data_and_phases(
    tmp_path: Path,
) -> None:
    """risk and portfolio take `marks`: each symbol's latest trade every marks_interval_ms
    (never a book), reference data and phases as they come."""
    run = tmp_path / "run"
    ctx: zmq.Context[Any] = zmq.Context.instance()
    md, marks = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
    for sock in (md, marks):
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    proc = start(tmp_path, QTS_OBSERVER__RATE_HZ="2000", QTS_OBSERVER__MARKS_INTERVAL_MS="100")
    ctl = client.ctl_address(run, "observer")
    try:
        eventually(lambda: client.call(ctl, "ping", timeout=0.5), message="observer up")
        md.connect(endpoint(run, "md"))
        marks.connect(endpoint(run, "marks"))
        time.sleep(0.3)  # both subscriptions live
        on_md: list[Any] = []
        on_marks: list[Any] = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            for sock, out in ((md, on_md), (marks, on_marks)):
                while sock.poll(0):
                    out.append(decode_md(sock.recv()))
            time.sleep(0.005)
        md_trades = [m for m in on_md if isinstance(m, Trade)]
        mark_trades = [m for m in on_marks if isinstance(m, Trade)]
        symbols = {m.symbol for m in md_trades}
        assert not any(isinstance(m, Book) for m in on_marks)
        # ~20 flushes in 2 s, at most one trade per symbol each, against ~1,300 trades on md
        assert 0 < len(mark_trades) <= 25 * len(symbols) < len(md_trades)
        assert any(isinstance(m, Instrument) for m in on_marks)
        assert any(isinstance(m, PhaseChanged) for m in on_marks)
        # every mark is a trade the md stream carried, with its own seq
        md_seqs = {m.seq for m in md_trades}
        assert {m.seq for m in mark_trades if m.seq > md_trades[0].seq} <= md_seqs
        # and the last mark per symbol is at most one flush behind the md stream's last trade
        last_md = {m.symbol: m.seq for m in md_trades}
        last_mark = {m.symbol: m.seq for m in mark_trades}
        assert last_mark.keys() == last_md.keys()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        md.close()
        marks.close()
