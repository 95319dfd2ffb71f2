"""The real strategy process (scope pulse, every 2 trades) against a fake supervisor (control
PUB), a fake observer (md PUB) and a fake risk (PULL bound at "intents")."""

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
from protocol.endpoints import ctl_name, endpoint
from protocol.enums import Side, TradingState
from protocol.messages import OrderIntent, Trade, TradingStateUpdate
from services.runtime import client
from tests.kit import eventually

decode = codec.decoder("intents").decode


def test_strategy_pulses_intents_and_survives_bad_frames(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    zctx: zmq.Context[Any] = zmq.Context.instance()
    control, md, intents = zctx.socket(zmq.PUB), zctx.socket(zmq.PUB), zctx.socket(zmq.PULL)
    for sock in (control, md, intents):
        sock.setsockopt(zmq.LINGER, 0)
    control.bind(endpoint(run, "control"))
    md.bind(endpoint(run, "md"))
    intents.bind(endpoint(run, "intents"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.strategy"],
        env={
            **os.environ,
            "QTS_RUNTIME__VAR_DIR": str(tmp_path),
            "QTS_STRATEGY__SCOPE": "pulse",
            "QTS_STRATEGY__PULSE_EVERY": "2",
            "QTS_STRATEGY__PULSE_QTY": "3",
        },
        cwd="/work/main",
    )
    ctl = endpoint(run, ctl_name("strategy"))
    seq = 0

    def ping() -> dict[str, Any]:
        return client.call(ctl, "ping", timeout=1.0)

    def state() -> bytes:
        return codec.encode(TradingStateUpdate(
            state=TradingState.ACTIVE, epoch=1, reason="test", by="test", changed_ns=0,
            ts_ns=time.time_ns()))  # fmt: skip

    def active() -> bool:
        control.send(state())
        return bool(ping()["state"] == "ACTIVE")

    def trade_until_intent() -> Any:
        """Trades keep coming (the SUB may join late); every 2nd one heard yields an intent."""
        nonlocal seq
        seq += 1
        control.send(state())
        md.send(codec.encode(Trade(stream=1, seq=seq, symbol="005930", exch_ns=0,
                                   price=70_000, qty=1)))  # fmt: skip
        if intents.poll(100):
            return decode(intents.recv())
        return None

    try:
        eventually(active, message="strategy ACTIVE")
        first = eventually(trade_until_intent, message="an intent from pulse")
        assert isinstance(first, OrderIntent)
        assert first.strategy == "pulse" and first.side is Side.BUY and first.qty == 3
        assert first.price == 70_000
        first_seq = int(first.intent_id.split(":")[2])  # pulse:<stream>:<seq>:<n>
        assert first.intent_id == f"pulse:1:{first_seq}:0" and first_seq <= seq
        # pulse holds nothing (no fills), so the next due order is a buy again, two trades on
        second = eventually(trade_until_intent, message="a second intent")
        assert isinstance(second, OrderIntent) and second.side is Side.BUY
        second_seq = int(second.intent_id.split(":")[2])
        assert second.intent_id == f"pulse:1:{second_seq}:0" and first_seq < second_seq <= seq

        stats = client.call(ctl, "stats", timeout=1.0)
        assert stats["strategies"] == ["pulse"]

        md.send(b"\xc1not msgpack")
        eventually(
            lambda: md.send(b"\xc1not msgpack") or ping()["counters"].get("bad_frames.md", 0) >= 1,
            message="bad frame counted",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        for sock in (control, md, intents):
            sock.close(0)
    assert code == 0
