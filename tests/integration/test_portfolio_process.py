"""The real portfolio process against a fake execution (journal ROUTER + exec PUB) and md PUB."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import zmq

from protocol import codec
from protocol.endpoints import ctl_name, endpoint
from protocol.enums import Side
from protocol.messages import CtlReply, CtlRequest, OrderFilled, Trade
from services.runtime import client
from tests.kit import eventually

KST = ZoneInfo("Asia/Seoul")
SYM = "005930"


def fill(seq: int, strategy: str, side: Side, qty: int, price: int) -> OrderFilled:
    ns = int(dt.datetime(2026, 1, 5, 10, tzinfo=KST).timestamp()) * 1_000_000_000
    return OrderFilled(
        seq=seq, fill_id=f"B{seq}-1", client_order_id=f"C{seq}", broker_order_no=f"B{seq}",
        strategy=strategy, symbol=SYM, side=side, qty=qty, price=price, leaves_qty=0,
        exch_ns=ns, ts_ns=ns,
    )  # fmt: skip


class FakeJournal(threading.Thread):
    """execution's ctl ROUTER answering events_since from an in-memory journal."""

    def __init__(self, address: str, events: list[OrderFilled]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.events = events
        self.done = threading.Event()
        self.requests = 0
        self.ready = threading.Event()

    def run(self) -> None:
        sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.address)
        self.ready.set()
        decode = msgspec.msgpack.Decoder(CtlRequest).decode
        while not self.done.is_set():
            if not sock.poll(50):
                continue
            ident, *_, payload = sock.recv_multipart()
            req = decode(payload)
            self.requests += 1
            after = int(req.args.get("seq", 0))
            data = {
                "events": msgspec.to_builtins([e for e in self.events if e.seq > after]),
                "last_seq": max(e.seq for e in self.events),
            }
            rep = CtlReply(request_id=req.request_id, ok=True, code="OK", data=data)
            sock.send_multipart([ident, b"", codec.encode(rep)])
        sock.close(0)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def peers(run_dir: Path) -> Iterator[tuple[FakeJournal, Any, Any]]:
    run_dir.mkdir(parents=True)
    journal = FakeJournal(
        endpoint(run_dir, ctl_name("execution")),
        [fill(1, "a", Side.BUY, 10, 50_000), fill(2, "b", Side.BUY, 10, 52_000)],
    )
    journal.start()
    journal.ready.wait(2)
    ctx: zmq.Context[Any] = zmq.Context.instance()
    exec_pub, md_pub = ctx.socket(zmq.PUB), ctx.socket(zmq.PUB)
    for sock, name in ((exec_pub, "exec"), (md_pub, "md")):
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint(run_dir, name))
    yield journal, exec_pub, md_pub
    journal.done.set()
    journal.join(2)
    exec_pub.close(0)
    md_pub.close(0)


def test_portfolio_recovers_books_live_fills_marks_and_survives_bad_frames(
    tmp_path: Path, run_dir: Path, peers: tuple[FakeJournal, Any, Any]
) -> None:
    journal, exec_pub, md_pub = peers
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.portfolio"],
        env={**os.environ, "QTS_RUNTIME__VAR_DIR": str(tmp_path)},
        cwd="/work/main",
    )
    ctl = endpoint(run_dir, ctl_name("portfolio"))

    def call(command: str) -> Any:
        return client.call(ctl, command, timeout=1.0)

    try:
        # recovery from the journal: two fills
        eventually(lambda: call("positions")["exec_seq"] == 2, message="recovered seq 2")
        assert call("ping")["status"] == "ready"

        # a third fill live (republished until heard: the seq makes repeats harmless)
        live = codec.encode(fill(3, "a", Side.SELL, 5, 53_000))
        eventually(
            lambda: exec_pub.send(live) or call("positions")["exec_seq"] == 3, message="live fill"
        )
        mark = codec.encode(Trade(stream=1, seq=1, symbol=SYM, exch_ns=0, price=54_000, qty=1))
        eventually(
            lambda: md_pub.send(mark) or call("positions")["positions"][0]["last_price"] == 54_000,
            message="mark",
        )

        # a gap: seq 4 is only in the journal, 5 arrives live -> portfolio fetches 4
        journal.events.append(fill(4, "b", Side.BUY, 1, 54_000))
        journal.events.append(fill(5, "b", Side.BUY, 1, 54_000))
        gap = codec.encode(journal.events[-1])
        eventually(lambda: exec_pub.send(gap) or call("positions")["exec_seq"] == 5, message="gap")

        pnl = call("pnl")
        # by hand (1.5 bp truncated; 0.20% tax, settles 2026-01-07; initial 100,000,000):
        # a: buy 10@50,000 fee 75; sell 5@53,000 fee 39 tax 530 -> realized 15,000
        # b: buy 10@52,000 fee 78; buy 1@54,000 twice fee 8 each
        assert pnl["by_strategy"]["a"] == {
            "realized": 15_000, "unrealized": 20_000, "fees": 114, "taxes": 530, "net": 34_356,
        }  # fmt: skip
        assert pnl["by_strategy"]["b"] == {
            "realized": 0, "unrealized": 20_000, "fees": 94, "taxes": 0, "net": 19_906,
        }  # fmt: skip
        # account pools a and b: 20 @ 1,020,000 -> sell 5 removes 255,000 -> realized 10,000
        cash = 100_000_000 - 500_075 - 520_078 + 265_000 - 39 - 530 - 2 * 54_008
        assert pnl["cash"] == cash
        assert pnl["realized"] == 10_000 and pnl["unrealized"] == 45_000
        assert pnl["fees"] == 208 and pnl["taxes"] == 530
        assert pnl["equity"] == cash + 17 * 54_000
        assert pnl["net"] == pnl["equity"] - 100_000_000

        # malformed frame on exec: counted, process alive
        eventually(
            lambda: (
                exec_pub.send(b"\xc1not msgpack")
                or call("ping")["counters"].get("bad_frames.exec", 0) >= 1
            ),
            message="bad frame counted",
        )
        assert call("positions")["exec_seq"] == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
    assert code == 0
