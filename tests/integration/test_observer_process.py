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
import zmq

from protocol import codec
from protocol.codes import CtlCode
from protocol.endpoints import ctl_name, endpoint
from protocol.messages import Book, CtlReply, EndOfStream, Instrument, Trade
from services.runtime import client
from tests.kit import eventually

REPO = "/work/main"


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


def test_observer_when_external_endpoint_then_exits_2_with_reason(tmp_path: Path) -> None:
    proc = start(tmp_path, QTS_OBSERVER__ENDPOINT="unix:///tmp/observer.sock")

    _, err = proc.communicate(timeout=10)

    assert proc.returncode == 2
    assert b"not built yet" in err
