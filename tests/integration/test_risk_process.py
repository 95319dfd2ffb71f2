"""The real risk process against a fake supervisor (control PUB), md PUB and execution (PULL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from protocol import codec
from protocol.codes import Reason
from protocol.endpoints import ctl_name, endpoint
from protocol.enums import Side, TradingState
from protocol.messages import (
    Instrument,
    IntentDenied,
    OrderIntent,
    SubmitOrder,
    TradingStateUpdate,
)
from services.runtime import client, ids
from tests.kit import eventually

decode = codec.decoder("orders").decode


def test_risk_approves_denies_and_survives_bad_frames(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    zctx: zmq.Context[Any] = zmq.Context.instance()
    control, md = zctx.socket(zmq.PUB), zctx.socket(zmq.PUB)
    orders, intents = zctx.socket(zmq.PULL), zctx.socket(zmq.PUSH)
    for sock in (control, md, orders, intents):
        sock.setsockopt(zmq.LINGER, 0)
    control.bind(endpoint(run, "control"))
    md.bind(endpoint(run, "md"))
    orders.bind(endpoint(run, "orders"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.risk"],
        env={**os.environ, "QTS_RUNTIME__VAR_DIR": str(tmp_path)},
        cwd="/work/main",
    )
    ctl = endpoint(run, ctl_name("risk"))
    state = codec.encode(
        TradingStateUpdate(
            state=TradingState.ACTIVE,
            epoch=1,
            reason="test",
            by="test",
            changed_ns=0,
            ts_ns=time.time_ns(),
        )
    )
    inst = codec.encode(
        Instrument(
            stream=1,
            seq=1,
            symbol="005930",
            base_price=70_000,
            upper_limit=91_000,
            lower_limit=49_000,
        )
    )

    def ping() -> dict[str, Any]:
        return client.call(ctl, "ping", timeout=1.0)

    def heard_peers() -> bool:
        control.send(state)
        md.send(inst)
        return bool(ping()["state"] == "ACTIVE")

    def decision(price: int, n: int) -> Any:
        """Push one intent (state and reference data refreshed first) and read risk's answer."""
        control.send(state)
        md.send(inst)
        intents.send(codec.encode(OrderIntent(
            intent_id=f"pulse:1:{n}:0", strategy="pulse", symbol="005930", side=Side.BUY,
            qty=1, price=price, created_ns=time.time_ns())))  # fmt: skip
        assert orders.poll(3000), "no answer from risk"
        return decode(orders.recv())

    try:
        eventually(heard_peers, message="risk ACTIVE")
        intents.connect(endpoint(run, "intents"))
        # the md SUB may join after the first Instrument was sent: until it has one, risk
        # answers UNKNOWN_SYMBOL, so ask again (a new intent id each time) until approved
        n = 0

        def approved() -> bool:
            nonlocal n
            n += 1
            msg = decision(70_000, n)
            if isinstance(msg, IntentDenied):
                assert msg.code == Reason.UNKNOWN_SYMBOL, msg
                return False
            assert isinstance(msg, SubmitOrder)
            assert msg.client_order_id == ids.client_order_id(f"pulse:1:{n}:0")
            return True

        eventually(approved, message="good intent approved")

        bad = decision(70_050, 1000)
        assert isinstance(bad, IntentDenied) and bad.code == Reason.TICK_SIZE
        assert "70050" in bad.reason

        stats = client.call(ctl, "stats", timeout=1.0)
        assert stats["approved"] == 1 and stats["denied"].get(Reason.TICK_SIZE) == 1

        intents.send(b"\xc1not msgpack")
        eventually(
            lambda: ping()["counters"].get("bad_frames.intents", 0) >= 1,
            message="bad frame counted",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        for sock in (control, md, orders, intents):
            sock.close(0)
    assert code == 0
