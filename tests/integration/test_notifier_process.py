"""A real supervisor POSTs its alerts to a real local web server: `qts-ctl halt`/`resume` and a
guardrail firing each arrive as JSON with who/why/epoch or the figures; a webhook that fails
(500), hangs, or is not there at all delays no halt; the URL's token never reaches the log."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from protocol import codec
from services.runtime import client
from services.runtime.settings import NotifierSettings
from services.supervisor.notifier import Notifier
from tests.integration.test_guardrails_process import FakePortfolio, snapshot
from tests.kit import eventually, qts_ctl_bin

REPO = Path(__file__).resolve().parents[2]
TOKEN = "T0KEN-9f8e7d6c5b4a"


class Hook:
    """A webhook on 127.0.0.1: records every POSTed JSON body; `mode` is how it answers:
    "ok" (204), "500", or "hang" (holds each request until release())."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.released = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.paths.append(self.path)
                hook.bodies.append(json.loads(body))
                if hook.mode == "hang":
                    hook.released.wait(30)
                self.send_response(500 if hook.mode == "500" else 204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook/{TOKEN}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def kinds(self) -> list[str]:
        return [b["kind"] for b in self.bodies]

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def refused_url() -> str:
    """A port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook/{TOKEN}"


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


class Supervisor:
    def __init__(self, tmp_path: Path, url: str, **env: str) -> None:
        self.var = tmp_path
        self.run = tmp_path / "run"
        self.stderr_path = tmp_path / "supervisor.stderr"
        self.env = {
            **os.environ,
            "QTS_RUNTIME__VAR_DIR": str(tmp_path),
            "QTS_SUPERVISOR__ACKNOWLEDGERS": "[]",
            "QTS_NOTIFIER__WEBHOOK_URL": url,
            "QTS_NOTIFIER__BACKOFF_S": "0.05",
            "QTS_NOTIFIER__TIMEOUT_S": "1",
            **env,
        }
        with open(self.stderr_path, "wb") as stderr:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.supervisor"],
                env=self.env,
                cwd=REPO,
                stderr=stderr,
            )
        eventually(lambda: self.call("ping"))

    def call(self, command: str) -> Any:
        return client.call(client.ctl_address(self.run, "supervisor"), command, timeout=3.0)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [qts_ctl_bin(), *args],
            env=self.env,
            cwd=REPO,
            text=True,
            capture_output=True,
            timeout=30,
        )

    def counters(self) -> dict[str, int]:
        counters: dict[str, int] = self.call("ping")["counters"]
        return counters

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self.stderr_path.read_text(errors="replace")


def test_halt_resume_and_guardrail_then_each_posted_with_its_figures(
    tmp_path: Path, hook: Hook
) -> None:
    fake = FakePortfolio(tmp_path / "run")
    sup = Supervisor(tmp_path, hook.url, QTS_GUARDRAILS__MAX_DAILY_LOSS="10000")
    try:
        eventually(lambda: "supervisor_started" in hook.kinds())
        started = hook.bodies[0]
        assert (started["state"], started["system"]) == ("ACTIVE", "qts")

        halt = sup.ctl("halt", "--reason", "alert drill", "--by", "alice")
        assert halt.returncode == 0, halt.stdout + halt.stderr
        epoch = sup.call("status")["epoch"]
        body = eventually(lambda: next((b for b in hook.bodies if b.get("epoch") == epoch), None))
        assert body["kind"] == "state_change"
        assert (body["previous"], body["state"]) == ("ACTIVE", "HALTED")
        assert (body["by"], body["reason"]) == ("alice", "alert drill")

        assert sup.ctl("resume", "--yes", "--by", "alice").returncode == 0
        eventually(lambda: hook.bodies[-1].get("state") == "ACTIVE")

        fake.publish(codec.encode(snapshot(realized=-10_001, fees=0)))
        fired = eventually(lambda: next((b for b in hook.bodies if b["kind"] == "guardrail"), None))
        assert (fired["name"], fired["action"]) == ("daily_loss", "HALTED")
        assert fired["figures"]["loss"] == 10_001
        assert fired["figures"]["max_daily_loss"] == 10_000
        assert "10,001 KRW exceeds 10,000 KRW" in fired["text"]
        change = eventually(lambda: hook.bodies[-1]["kind"] == "state_change" and hook.bodies[-1])
        assert (change["state"], change["by"]) == ("HALTED", "guardrail:daily_loss")
        eventually(lambda: sup.counters()["notifier.sent"] == 5)
        assert len(hook.bodies) == 5
        assert all(p == f"/hook/{TOKEN}" for p in hook.paths)
        assert sup.stop() == 0
    finally:
        fake.close()
        log = sup.close()
    assert "alert drill" in log and "guardrail daily_loss fired" in log
    assert "http://127.0.0.1" in log and TOKEN not in log


@pytest.mark.parametrize("mode", ["500", "hang", "refused"])
def test_failing_webhook_then_the_halt_is_not_delayed(tmp_path: Path, mode: str) -> None:
    hook = Hook("hang" if mode == "hang" else "500")
    url = refused_url() if mode == "refused" else hook.url
    sup = Supervisor(tmp_path, url, QTS_NOTIFIER__RETRIES="2")
    try:
        if mode == "hang":  # the notifier's thread is held by the web server
            eventually(lambda: hook.bodies)
        halt = sup.ctl("halt", "--reason", f"webhook {mode}")
        assert halt.returncode == 0, halt.stdout + halt.stderr
        assert sup.call("status")["state"] == "HALTED"
        if mode == "hang":
            assert len(hook.bodies) == 1  # still on the first alert
        else:
            # both alerts given up after 3 attempts each; the loop answered all along
            eventually(lambda: sup.counters()["notifier.failed"] == 2)
        if mode == "500":
            assert len(hook.bodies) == 6
        assert sup.stop() == 0  # a hung request does not hold up the shutdown
    finally:
        log = sup.close()
        hook.close()
    assert TOKEN not in log
    if mode != "hang":
        assert "not delivered after 3 attempts" in log


def test_real_http_post_then_answers_read_as_delivered_or_failed(hook: Hook) -> None:
    """The notifier's own POST against real servers (in this process)."""
    cfg = NotifierSettings(webhook_url=hook.url, retries=0)
    n = Notifier(cfg)
    n.notify("state_change", state="HALTED")
    eventually(lambda: n.sent == 1)
    n.close()
    hook.mode = "500"
    bad = Notifier(cfg)
    assert bad.post(b"{}") == "HTTP 500 Internal Server Error"
    bad.close()
    refused = Notifier(NotifierSettings(webhook_url=refused_url(), retries=0))
    assert "ConnectionRefusedError" in (refused.post(b"{}") or "")
    refused.close()
    hook.mode = "hang"
    slow = Notifier(NotifierSettings(webhook_url=hook.url, timeout_s=0.2, retries=0))
    assert "timed out" in (slow.post(b"{}") or "")
    slow.close()
