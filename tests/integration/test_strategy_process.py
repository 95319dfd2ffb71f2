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


def test_strategy_when_restarted_then_warm_from_the_observers_history(tmp_path: Path) -> None:
    """A real observer plays 2,000 events and stops trading; a strategy started (and restarted
    after SIGKILL) afterwards knows every symbol's last price from the replay alone, its plugin
    saw the trades (pulse asked for orders: suppressed, counted, never sent), and it continues
    from the observer's (stream, seq)."""
    run = tmp_path / "run"
    env = {**os.environ, "QTS_RUNTIME__VAR_DIR": str(tmp_path)}
    zctx: zmq.Context[Any] = zmq.Context.instance()
    intents = zctx.socket(zmq.PULL)  # risk's end: nothing may arrive here
    intents.setsockopt(zmq.LINGER, 0)
    run.mkdir(parents=True)
    intents.bind(endpoint(run, "intents"))
    with open(tmp_path / "observer.log", "wb") as log:
        observer = subprocess.Popen(
            [sys.executable, "-m", "services.observer"],
            env={**env, "QTS_OBSERVER__RATE_HZ": "5000", "QTS_OBSERVER__MAX_EVENTS": "2000"},
            cwd="/work/main",
            stderr=log,
        )
    obs_ctl = endpoint(run, ctl_name("observer"))
    ctl = endpoint(run, ctl_name("strategy"))
    strategy: subprocess.Popen[bytes] | None = None
    try:
        eventually(lambda: client.call(obs_ctl, "stats", timeout=0.5)["done"], message="done")
        observed = client.call(obs_ctl, "stats")
        last_prices = {s: v["last_price"] for s, v in observed["per_symbol"].items()}
        for attempt in ("start", "restart"):
            with open(tmp_path / f"strategy-{attempt}.log", "wb") as log:
                strategy = subprocess.Popen(
                    [sys.executable, "-m", "services.strategy"],
                    env={**env, "QTS_STRATEGY__SCOPE": "pulse", "QTS_STRATEGY__PULSE_EVERY": "5"},
                    cwd="/work/main",
                    stderr=log,
                )
            # ctl answers once setup (and so the warm-up) is done
            ping = eventually(lambda: client.call(ctl, "ping", timeout=0.5), message=attempt)
            stats = client.call(ctl, "stats")

            assert stats["last_prices"] == last_prices, attempt
            assert ping["counters"]["md_warmup"] >= observed["seq"]  # the whole day so far
            assert ping["counters"]["warmup_suppressed"] >= 2_000 // 5 // 2  # pulse did ask
            assert stats["replay_suppressed"] == ping["counters"]["warmup_suppressed"]
            assert stats["md"]["stream"] == observed["stream"]
            assert stats["md"]["seq"] >= observed["seq"]
            assert "intents" not in ping["counters"] and not intents.poll(200)
            # live from where the replay stopped: the periodic Instruments go on, no gap
            warm_seq = stats["md"]["seq"]
            eventually(
                lambda seq=warm_seq: client.call(ctl, "stats")["md"]["seq"] > seq + 4,
                message="live md after warm-up",
            )
            counters = client.call(ctl, "ping")["counters"]
            assert "md_lost" not in counters
            strategy.send_signal(signal.SIGKILL)
            strategy.wait(10)
    finally:
        for proc in (strategy, observer):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
        intents.close(0)
