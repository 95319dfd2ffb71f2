"""The real execution process against a fake paper venue (ROUTER + PUB speaking protocol/venue.py)
and a fake supervisor control PUB (ACTIVE)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from protocol import codec
from protocol.codes import Reason
from protocol.endpoints import ctl_name, endpoint
from protocol.enums import Side, TradingState
from protocol.messages import (
    ExecEvent,
    IntentDenied,
    OrderAccepted,
    OrderFilled,
    OrderSubmitted,
    SubmitOrder,
    TradingStateUpdate,
)
from protocol.venue import (
    VenueAck,
    VenueFill,
    VenueFillNotice,
    VenueNewOrder,
    VenueOrder,
    VenueQuery,
    VenueQueryReply,
)
from services.runtime import client, ids
from tests.kit import eventually


class FakeVenue(threading.Thread):
    """Acks every new order with its own number, then fills it whole, and answers queries."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(daemon=True)
        self.run_dir = run_dir
        self.new_orders: list[VenueNewOrder] = []
        self.orders: list[VenueOrder] = []
        self.fills: list[VenueFill] = []
        self.done = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        ctx: zmq.Context[Any] = zmq.Context.instance()
        router, pub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUB)
        for sock, name in ((router, "venue"), (pub, "venue_notice")):
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(endpoint(self.run_dir, name))
        self.ready.set()
        decode = codec.decoder("venue_request").decode
        seq = 0
        while not self.done.is_set():
            if not router.poll(50):
                continue
            ident, *_, payload = router.recv_multipart()
            req = decode(payload)
            now = time.time_ns()
            if isinstance(req, VenueNewOrder):
                self.new_orders.append(req)
                no = f"V{len(self.new_orders)}"
                ack = VenueAck(req_id=req.req_id, ok=True, order_no=no, ts_ns=now)
                router.send_multipart([ident, b"", codec.encode(ack)])
                seq += 1
                self.orders.append(VenueOrder(
                    order_no=no, symbol=req.symbol, side=req.side, qty=req.qty,
                    price=req.price, order_type=req.order_type, tif=req.tif,
                    filled_qty=req.qty, status="filled", ts_ns=now))  # fmt: skip
                self.fills.append(
                    VenueFill(
                        order_no=no,
                        fill_no=1,
                        symbol=req.symbol,
                        side=req.side,
                        qty=req.qty,
                        price=req.price,
                        ts_ns=now + 1,
                    )
                )
                pub.send(codec.encode(VenueFillNotice(
                    seq=seq, order_no=no, fill_no=1, symbol=req.symbol, side=req.side,
                    qty=req.qty, price=req.price, leaves_qty=0, ts_ns=now + 1)))  # fmt: skip
            elif isinstance(req, VenueQuery):
                rep = VenueQueryReply(
                    req_id=req.req_id, orders=list(self.orders), fills=list(self.fills)
                )
                router.send_multipart([ident, b"", codec.encode(rep)])
            else:
                rep = VenueAck(req_id=req.req_id, ok=False, code="UNKNOWN", message="no")
                router.send_multipart([ident, b"", codec.encode(rep)])
        router.close(0)
        pub.close(0)


class FakeControl(threading.Thread):
    def __init__(self, run_dir: Path) -> None:
        super().__init__(daemon=True)
        self.run_dir = run_dir
        self.done = threading.Event()

    def run(self) -> None:
        pub: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(endpoint(self.run_dir, "control"))
        while not self.done.wait(0.1):
            now = time.time_ns()
            pub.send(codec.encode(TradingStateUpdate(
                state=TradingState.ACTIVE, epoch=1, reason="test", by="test", changed_ns=now,
                ts_ns=now)))  # fmt: skip
        pub.close(0)


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    venue, control = FakeVenue(run), FakeControl(run)
    venue.start()
    control.start()
    venue.ready.wait(2)
    yield run
    venue.done.set()
    control.done.set()
    venue.join(2)
    control.join(2)


def start(tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.execution"],
        env={**os.environ, "QTS_RUNTIME__VAR_DIR": str(tmp_path)},
        cwd="/work/main",
    )


def test_execution_sends_once_books_fills_and_recovers_after_sigkill(
    tmp_path: Path, run_dir: Path
) -> None:
    venue = next(t for t in threading.enumerate() if isinstance(t, FakeVenue))
    ctx: zmq.Context[Any] = zmq.Context.instance()
    push, sub = ctx.socket(zmq.PUSH), ctx.socket(zmq.SUB)
    for sock in (push, sub):
        sock.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    push.connect(endpoint(run_dir, "orders"))
    sub.connect(endpoint(run_dir, "exec"))
    ctl = endpoint(run_dir, ctl_name("execution"))
    decode = codec.decoder("exec").decode
    seen: list[ExecEvent] = []

    def drain() -> list[ExecEvent]:
        while sub.poll(0):
            seen.append(decode(sub.recv()))
        return seen

    def call(command: str, **args: Any) -> Any:
        return client.call(ctl, command, args, timeout=1.0)

    order = SubmitOrder(
        client_order_id=ids.client_order_id("i1"),
        intent_id="i1",
        strategy="s",
        symbol="005930",
        side=Side.BUY,
        qty=10,
        price=70_000,
        intent_ns=time.time_ns(),
    )
    proc = start(tmp_path)
    try:
        eventually(lambda: call("ping")["status"] == "ready", message="ready")
        # our exec SUB may join late (slow joiner): send stale probes (denied STALE_INTENT)
        # until one's denial is heard, so the real order's events cannot be missed
        probes = iter(range(1000))

        def probe() -> bool:
            n = next(probes)
            push.send(codec.encode(SubmitOrder(
                client_order_id=ids.client_order_id(f"p{n}"), intent_id=f"p{n}", strategy="s",
                symbol="005930", side=Side.BUY, qty=1, price=70_000, intent_ns=1)))  # fmt: skip
            return any(isinstance(e, IntentDenied) for e in drain())

        eventually(probe, message="exec SUB joined")
        assert all(e.code == Reason.STALE_INTENT for e in seen if isinstance(e, IntentDenied))
        time_ok = time.time_ns()
        order = msgspec.structs.replace(order, intent_ns=time_ok)
        push.send(codec.encode(order))
        kinds = [OrderSubmitted, OrderAccepted, OrderFilled]

        def mine() -> list[type]:
            return [type(e) for e in drain() if not isinstance(e, IntentDenied)]

        eventually(lambda: mine() == kinds, message="exec events")
        filled = next(e for e in seen if isinstance(e, OrderFilled))
        assert filled.leaves_qty == 0 and filled.fill_id == "V1-1"

        push.send(codec.encode(order))  # the same intent again: dropped
        eventually(
            lambda: call("ping")["counters"].get("duplicate_orders", 0) == 1,
            message="duplicate counted",
        )
        assert len(venue.new_orders) == 1
        rows = call("orders")["orders"]
        assert [r["status"] for r in rows if r["client_order_id"] == order.client_order_id] == [
            "FILLED"
        ]
        assert {r["status"] for r in rows} == {"FILLED", "DENIED"}
        assert call("orders", open_only=True)["orders"] == []

        eventually(
            lambda: (
                push.send(b"\xc1junk") or call("ping")["counters"].get("bad_frames.orders", 0) >= 1
            ),
            message="bad frame counted",
        )
        before = call("events_since", seq=0)
        assert len(before["events"]) == before["last_seq"] >= 4

        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        proc = start(tmp_path)
        eventually(lambda: call("ping")["status"] == "ready", message="ready after restart")
        after = call("events_since", seq=0)
        assert after == before
        seqs = [msgspec.convert(d, ExecEvent).seq for d in after["events"]]
        assert seqs == list(range(1, before["last_seq"] + 1))
        assert len(venue.new_orders) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        push.close(0)
        sub.close(0)
    assert code == 0
