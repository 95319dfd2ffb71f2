"""qts-ctl against a real in-test ROUTER that answers like the supervisor would."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from click.testing import CliRunner

from protocol import codec
from protocol.messages import CtlReply, CtlRequest
from services.ctl.cli import cli
from services.runtime import client

Handler = Callable[[CtlRequest], CtlReply]

STATUS = {
    "state": "ACTIVE",
    "epoch": 4,
    "reason": "drill over",
    "by": "ops",
    "changed_ns": 1,
    "services": {
        "risk": {
            "alive": True,
            "status": "ready",
            "detail": "",
            "pid": 321,
            "age_ms": 12.5,
            "epoch_ack": 4,
            "counters": {},
            "started_ns": 1,
        },
        "strategy": {
            "alive": False,
            "status": "never heard",
            "detail": "",
            "pid": None,
            "age_ms": None,
            "epoch_ack": 0,
            "counters": {},
            "started_ns": None,
        },
    },
}
ACKS = {
    "state": "HALTED",
    "epoch": 5,
    "acks": {
        "risk": {"acked": True, "ms": 3.25, "alive": True},
        "strategy": {"acked": False, "ms": None, "alive": False},
    },
    "execution": {"halt_cancels_sent": 7, "halt_cancels_confirmed": 6},
}


class Server:
    def __init__(self, address: str, handler: Handler) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.bind(address)
        self.handler = handler
        self.requests: list[CtlRequest] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        decoder = msgspec.msgpack.Decoder(CtlRequest)
        while not self.stop.is_set():
            if not self.sock.poll(20):
                continue
            identity, *_, body = self.sock.recv_multipart()
            req = decoder.decode(body)
            self.requests.append(req)
            rep = self.handler(req)
            rep = msgspec.structs.replace(rep, request_id=req.request_id)
            self.sock.send_multipart([identity, b"", codec.encode(rep)])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QTS_RUNTIME__VAR_DIR", str(tmp_path))
    # a conf whose supervisord is not running: status must still work without it
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        f"[unix_http_server]\nfile={tmp_path}/none.sock\n"
        f"[supervisord]\npidfile={tmp_path}/none.pid\n"
    )
    monkeypatch.setenv("QTS_SUPERVISORD_CONF", str(conf))
    (tmp_path / "run").mkdir()
    return tmp_path


@pytest.fixture
def serve(env: Path) -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handler: Handler) -> Server:
        server = Server(client.ctl_address(env / "run", "supervisor"), handler)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


def ok(data: Any) -> Handler:
    return lambda req: CtlReply(request_id="", ok=True, code="OK", data=data)


def test_status_renders_state_and_services(serve: Callable[[Handler], Server]) -> None:
    serve(ok(STATUS))
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    assert "trading state: ACTIVE (epoch 4, by ops: drill over)" in result.output
    risk_line = next(line for line in result.output.splitlines() if line.startswith("risk"))
    assert "yes" in risk_line and "321" in risk_line
    strategy_line = next(ln for ln in result.output.splitlines() if ln.startswith("strategy"))
    assert "NO" in strategy_line and "never heard" in strategy_line


def test_status_json_is_the_reply_data(serve: Callable[[Handler], Server]) -> None:
    serve(ok(STATUS))
    result = CliRunner().invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == STATUS


def test_halt_sends_reason_and_by_and_renders_acks(serve: Callable[[Handler], Server]) -> None:
    server = serve(ok({**ACKS, "acks": {"risk": ACKS["acks"]["risk"]}}))
    result = CliRunner().invoke(cli, ["halt", "--reason", "fat finger", "--by", "kim"])
    assert result.exit_code == 0, result.output
    # a ping first: a dead supervisor must switch to the emergency halt at once
    assert [r.command for r in server.requests] == ["ping", "halt"]
    assert server.requests[1].args == {"reason": "fat finger", "by": "kim"}
    assert "trading state HALTED (epoch 5)" in result.output
    assert "7 cancels sent, 6 confirmed" in result.output


def test_halt_not_acknowledged_then_exit_nonzero_with_code(
    serve: Callable[[Handler], Server],
) -> None:
    serve(
        lambda req: CtlReply(
            request_id="",
            ok=False,
            code="NOT_ACKNOWLEDGED",
            reason="not acknowledged in time by strategy (down)",
            data=ACKS,
        )
    )
    result = CliRunner().invoke(cli, ["halt", "--reason", "x"])
    assert result.exit_code != 0
    assert "error: NOT_ACKNOWLEDGED: not acknowledged in time by strategy (down)" in result.stderr
    strategy_line = next(ln for ln in result.stdout.splitlines() if ln.startswith("strategy"))
    assert "NO" in strategy_line and "DOWN" in strategy_line


def test_error_reply_then_exit_nonzero_with_code_and_reason(
    serve: Callable[[Handler], Server],
) -> None:
    serve(
        lambda req: CtlReply(
            request_id="", ok=False, code="INVALID_TRANSITION", reason="cannot reduce while HALTED"
        )
    )
    result = CliRunner().invoke(cli, ["reduce", "--reason", "x", "--json"])
    assert result.exit_code != 0
    assert "error: INVALID_TRANSITION: cannot reduce while HALTED" in result.stderr


def test_status_when_nobody_answers_then_timeout_error(env: Path) -> None:
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code != 0
    assert result.stderr.startswith("error: TIMEOUT: supervisor:")


def test_resume_without_yes_on_non_tty_then_refused(serve: Callable[[Handler], Server]) -> None:
    server = serve(ok(ACKS))
    result = CliRunner().invoke(cli, ["resume"])
    assert result.exit_code != 0
    assert "error: BAD_REQUEST:" in result.stderr
    assert server.requests == []
