"""The supervisor's HTTP front on a real socket: routes, headers, the halt token, a port taken.
(The whole system behind it: tests/integration/test_metrics_process.py and
test_dashboard_browser.py.)"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from services.runtime.settings import MetricsSettings
from services.supervisor.dashboard import HttpFront
from services.supervisor.engine import HeartbeatTable
from services.supervisor.metrics import build_view
from tests.kit import eventually

TOKEN = "s3cret-dashboard-token"


def settings(**kw: Any) -> MetricsSettings:
    base: dict[str, Any] = {
        "port": 0,
        "fetch_interval_ms": 50,
        "fetch_timeout_ms": 100,
        "bind_retry_s": 0.05,
    }
    return MetricsSettings(**{**base, **kw})


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    yield lines
    logger.remove(sink)


@pytest.fixture
def front(tmp_path: Path) -> Iterator[HttpFront]:
    f = HttpFront(settings(), tmp_path, {}, 0.3, environ={"QTS_DASHBOARD_TOKEN": TOKEN})
    f.start()
    assert f.listening.wait(5)
    yield f
    f.close()


def get(front: HttpFront, path: str, method: str = "GET", body: bytes | None = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def publish(front: HttpFront, state: str = "ACTIVE") -> None:
    status = {"state": state, "epoch": 2, "reason": "", "by": "t", "changed_ns": 0}
    status["services"] = {}
    front.publish(build_view(status, HeartbeatTable([], 1.0), time.time_ns()))


def test_routes_and_headers(front: HttpFront) -> None:
    code, _, body = get(front, "/healthz")
    assert (code, body) == (503, b"no view yet")
    publish(front)
    assert get(front, "/healthz")[0] == 200

    code, headers, body = get(front, "/metrics")
    assert code == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'qts_trading_state{state="ACTIVE"} 1.0' in body

    code, headers, body = get(front, "/")
    assert code == 200
    assert b'id="halt-button"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert get(front, "/app.js")[0] == 200
    assert get(front, "/app.css")[0] == 200
    assert get(front, "/nothing")[0] == 404
    assert get(front, "/metrics", method="HEAD")[2] == b""

    state = json.loads(get(front, "/api/state")[2])
    assert state["status"]["state"] == "ACTIVE"
    assert state["halt_enabled"] is True
    assert TOKEN not in json.dumps(state)


def test_the_fetcher_says_which_service_did_not_answer(front: HttpFront) -> None:
    # nobody has the page open: only portfolio (PnL and positions for /metrics) is asked
    book = eventually(lambda: front.book, timeout=5)
    assert set(book["sources"]) == {"positions", "pnl"}
    publish(front)
    get(front, "/api/state")  # the page opened: execution and performance too, at once
    book = eventually(lambda: front.book if len(front.book["sources"]) == 5 else None, timeout=5)
    assert set(book["sources"]) == {"positions", "pnl", "open_orders", "orders", "performance"}
    assert all(not s["ok"] and "no reply" in s["error"] for s in book["sources"].values())
    assert front.counters()["dashboard_fetch_errors"] >= 7


def test_halt_needs_the_token_and_never_logs_it(front: HttpFront, log_lines: list[str]) -> None:
    def halt(body: Any) -> tuple[int, dict[str, Any]]:
        code, _, out = get(front, "/api/halt", "POST", json.dumps(body).encode())
        return code, json.loads(out)

    code, out = halt({"token": "guess", "reason": "x"})
    assert (code, out["reason"]) == (403, "wrong token")
    code, out = halt({"reason": "no token"})
    assert code == 400
    code, out = halt({"token": 5})
    assert code == 400
    code, _, _ = get(front, "/api/halt", "POST", b"not json")
    assert code == 400
    # the right token: the halt goes to the supervisor's ctl socket (none here: a timeout)
    code, out = halt({"token": TOKEN, "reason": "operator saw a problem"})
    assert code == 504
    assert "no reply to 'halt'" in out["reason"]
    assert front.counters()["dashboard_halts"] == 1
    assert front.counters()["dashboard_halt_refused"] == 1
    assert any("dashboard halt: operator saw a problem" in ln for ln in log_lines)
    assert not any(TOKEN in ln for ln in log_lines)
    assert get(front, "/api/nothing", "POST", b"{}")[0] == 404


def test_no_token_variable_no_halt(tmp_path: Path) -> None:
    f = HttpFront(settings(), tmp_path, {}, 0.3, environ={})
    f.start()
    try:
        assert f.listening.wait(5)
        publish(f)
        assert json.loads(get(f, "/api/state")[2])["halt_enabled"] is False
        code, _, out = get(f, "/api/halt", "POST", b'{"token": "", "reason": "x"}')
        assert code == 403
        assert json.loads(out)["reason"] == "halt disabled: QTS_DASHBOARD_TOKEN is not set"
    finally:
        f.close()


def test_a_taken_port_is_retried_not_fatal(front: HttpFront, tmp_path: Path) -> None:
    second = HttpFront(settings(port=front.port), tmp_path, {}, 0.3, environ={})
    second.start()
    try:
        eventually(lambda: second.counters()["http_bind_errors"] >= 2, timeout=5)
        assert not second.listening.is_set()
        front.close()
        assert second.listening.wait(5)
        publish(second)
        assert get(second, "/healthz")[0] == 200
    finally:
        second.close()


def test_close_is_prompt(tmp_path: Path) -> None:
    f = HttpFront(settings(fetch_interval_ms=60_000), tmp_path, {}, 0.3, environ={})
    f.start()
    assert f.listening.wait(5)
    started = time.monotonic()
    f.close()
    assert not any(t.is_alive() for t in f._threads)
    print(f"close took {time.monotonic() - started:.3f}s")


def test_ipv6_loopback(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    f = HttpFront(settings(host="::1"), tmp_path, {}, 0.3, environ={})
    f.start()
    try:
        if not f.listening.wait(2):
            pytest.skip("::1 cannot be bound here")
        publish(f)
        conn = http.client.HTTPConnection("::1", f.port, timeout=10)
        try:
            conn.request("GET", "/healthz")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
    finally:
        f.close()
