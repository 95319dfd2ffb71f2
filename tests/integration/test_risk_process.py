"""The real risk process against a fake supervisor (control PUB), marks PUB and execution."""

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
from protocol.enums import MarketPhase, Side, TradingState
from protocol.messages import (
    Instrument,
    IntentDenied,
    OrderIntent,
    PhaseChanged,
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
    md.bind(endpoint(run, "marks"))  # risk takes the conflated marks stream
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

    phase = codec.encode(
        PhaseChanged(stream=1, seq=2, symbol="", exch_ns=0, phase=MarketPhase.CONTINUOUS)
    )
    halted = codec.encode(
        PhaseChanged(stream=1, seq=3, symbol="005930", exch_ns=0, phase=MarketPhase.HALTED)
    )

    def ping() -> dict[str, Any]:
        return client.call(ctl, "ping", timeout=1.0)

    def heard_peers() -> bool:
        control.send(state)
        md.send(inst)
        return bool(ping()["state"] == "ACTIVE")

    def decision(price: int, n: int, with_phase: bool = True) -> Any:
        """Push one intent (state, reference data and phase refreshed first) and read risk's
        answer."""
        control.send(state)
        md.send(inst)
        if with_phase:
            md.send(phase)
        intents.send(codec.encode(OrderIntent(
            intent_id=f"pulse:1:{n}:0", strategy="pulse", symbol="005930", side=Side.BUY,
            qty=1, price=price, created_ns=time.time_ns())))  # fmt: skip
        assert orders.poll(3000), "no answer from risk"
        return decode(orders.recv())

    try:
        eventually(heard_peers, message="risk ACTIVE")
        intents.connect(endpoint(run, "intents"))
        # the md SUB may join after the first Instrument and phase were sent: until it has
        # them, risk answers SESSION_UNKNOWN or UNKNOWN_SYMBOL, so ask again (a new intent id
        # each time) until approved
        n = 0
        early = {Reason.UNKNOWN_SYMBOL, Reason.SESSION_UNKNOWN}
        # no phase was ever sent: refused whatever else risk has heard (risk.require_phase)
        first = decision(70_000, 0, with_phase=False)
        assert isinstance(first, IntentDenied) and first.code == Reason.SESSION_UNKNOWN, first

        def approved() -> bool:
            nonlocal n
            n += 1
            msg = decision(70_000, n)
            if isinstance(msg, IntentDenied):
                assert msg.code in early, msg
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
        assert stats["market_phase"] == "CONTINUOUS" and stats["orders_today"] == 1

        # a symbol's own halt (PhaseChanged from the observer, wired in service.on_md)
        md.send(halted)
        eventually(
            lambda: client.call(ctl, "stats", timeout=1.0)["symbol_phases"] == {"005930": "HALTED"},
            message="symbol halt applied",
        )
        control.send(state)
        intents.send(codec.encode(OrderIntent(
            intent_id="pulse:1:2000:0", strategy="pulse", symbol="005930", side=Side.BUY,
            qty=1, price=70_000, created_ns=time.time_ns())))  # fmt: skip
        assert orders.poll(3000), "no answer from risk"
        msg = decode(orders.recv())
        assert isinstance(msg, IntentDenied) and msg.code == Reason.MARKET_HALTED, msg

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
