"""The supervisor's HTTP front: Prometheus /metrics and a small read-only dashboard.

Threads, so the supervisor loop never waits on HTTP:
  - the loop calls publish() every metrics.publish_interval_ms with a fresh View (a deep copy
    of its `status` answer): one reference assignment, no lock;
  - the server thread accepts connections; each request runs on a thread of its own and reads
    only the latest View and book;
  - the fetch thread asks portfolio, execution and performance for positions, PnL, open
    orders, recent rejects and latency over their ctl sockets (a zmq context of its own) and
    swaps in a new book.
The halt button POSTs to /api/halt with a token that must equal the environment variable
named by metrics.halt_token_env (no variable: no halt). The halt then goes to the supervisor's
own ctl socket, exactly as `qts-ctl halt` does. The token is masked in every log line and
never written anywhere.

Routes: GET / (page), /app.js, /app.css, /api/state (JSON), /metrics, /healthz; POST /api/halt.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import zmq

from services.runtime import log
from services.runtime.client import CtlFailed, CtlTimeout, call, ctl_address, request
from services.runtime.log import logger
from services.runtime.settings import MetricsSettings
from services.supervisor.dashboard_assets import ASSETS
from services.supervisor.metrics import View, build_view, render

if TYPE_CHECKING:
    from services.supervisor.service import SupervisorService

MAX_BODY = 4_096
VIEWED_S = 30.0  # execution and performance are asked only while someone has the page open
HEALTHY_VIEW_AGE_S = 5.0  # /healthz fails if the supervisor loop has not published for this long
WRONG_TOKEN_DELAY_S = 0.5  # slows guessing; only the request's own thread sleeps
REFUSED = ("REJECTED", "DENIED")
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
COUNTERS = (
    "http_requests",
    "http_errors",
    "http_bind_errors",
    "metrics_scrapes",
    "dashboard_halts",
    "dashboard_halt_refused",
    "dashboard_fetch_errors",
)


class HttpFront:
    def __init__(
        self,
        cfg: MetricsSettings,
        run_dir: Path,
        endpoints: dict[str, str],
        halt_timeout_s: float,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.endpoints = endpoints
        self.halt_timeout_s = halt_timeout_s
        token = (environ if environ is not None else os.environ).get(cfg.halt_token_env, "")
        self._token = token.encode()
        log.mask(token)
        self.view: View | None = None
        self.book: dict[str, Any] | None = None
        self.port = 0  # the bound port once listening
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()  # fetch now: the page was just opened
        self._viewed = -VIEWED_S  # monotonic time of the last /api/state
        self._counts = dict.fromkeys(COUNTERS, 0)  # every key made here: threads only add
        self._lock = threading.Lock()  # counters are added to from request threads
        self._server: ThreadingHTTPServer | None = None
        self._threads = [
            threading.Thread(target=self._serve, name="qts-http", daemon=True),
            threading.Thread(target=self._fetch_loop, name="qts-fetch", daemon=True),
        ]

    @property
    def halt_enabled(self) -> bool:
        return bool(self._token)

    # ------------------------------------------------------------------------------ loop side
    def start(self) -> None:
        for t in self._threads:
            t.start()

    def publish(self, view: View) -> None:
        self.view = view

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=self.cfg.fetch_timeout_ms / 1000.0 * 4 + 1.0)
        if self._server is not None:
            self._server.server_close()
            self._server = None

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    # ------------------------------------------------------------------------------ server
    def _serve(self) -> None:
        class Handler(_Handler):
            pass

        Handler.front = self
        server_cls = _Server6 if ":" in self.cfg.host else _Server
        while not self._stop.is_set():
            try:
                server = server_cls((self.cfg.host, self.cfg.port), Handler)
            except OSError as exc:
                self.count("http_bind_errors")
                logger.error(
                    "metrics/dashboard cannot listen on {}:{} ({}); trying again in {}s",
                    self.cfg.host,
                    self.cfg.port,
                    exc,
                    self.cfg.bind_retry_s,
                )
                self._stop.wait(self.cfg.bind_retry_s)
                continue
            self._server = server
            self.port = server.server_address[1]
            logger.info(
                "metrics and dashboard on http://{}:{}/ (halt button {})",
                self.cfg.host,
                self.port,
                "enabled" if self.halt_enabled else f"disabled: {self.cfg.halt_token_env} unset",
            )
            self.listening.set()
            server.timeout = 0.2
            while not self._stop.is_set():
                server.handle_request()
            return

    # ------------------------------------------------------------------------------ fetch
    def _fetch_loop(self) -> None:
        while not self._stop.is_set():
            self.book = self.fetch(time.monotonic() - self._viewed < VIEWED_S)
            self._wake.wait(self.cfg.fetch_interval_ms / 1000.0)
            self._wake.clear()

    def viewed(self) -> None:
        """The page asked for its data: fetch the page's figures too, at once if they were
        not being fetched."""
        now = time.monotonic()
        if now - self._viewed >= VIEWED_S:
            self._wake.set()
        self._viewed = now

    def fetch(self, viewed: bool) -> dict[str, Any]:
        """One round of questions to the services; a service that does not answer leaves its
        part of the book empty and says why in book["sources"]. Portfolio (PnL, positions: in
        /metrics) is always asked; execution (orders from its journal) and performance only
        while the page is open, so that nobody watching costs the order path nothing."""
        timeout = self.cfg.fetch_timeout_ms / 1000.0
        book: dict[str, Any] = {"fetched_ns": time.time_ns(), "sources": {}}
        ctx: zmq.Context[Any] = zmq.Context()
        try:

            def ask(source: str, service: str, command: str, args: dict[str, Any]) -> Any:
                if self._stop.is_set():
                    return None
                address = ctl_address(self.run_dir, service, self.endpoints)
                try:
                    data = call(address, command, args, timeout, ctx)
                except (CtlTimeout, CtlFailed) as exc:
                    self.count("dashboard_fetch_errors")
                    book["sources"][source] = {"ok": False, "error": str(exc)}
                    return None
                book["sources"][source] = {"ok": True, "error": ""}
                return data

            positions = ask("positions", "portfolio", "positions", {})
            if positions is not None:
                book["positions"] = positions.get("positions", [])
            pnl = ask("pnl", "portfolio", "pnl", {})
            if pnl is not None:
                book["pnl"] = {k: v for k, v in pnl.items() if not isinstance(v, dict)}
            if not viewed:
                return book
            opened = ask("open_orders", "execution", "orders", {"open_only": True, "limit": 200})
            if opened is not None:
                book["open_orders"] = opened.get("orders", [])
            recent = ask("orders", "execution", "orders", {"limit": 200})
            if recent is not None:
                refused = [o for o in recent.get("orders", []) if o.get("status") in REFUSED]
                book["rejects"] = refused[: self.cfg.recent_rejects]
            perf = ask("performance", "performance", "summary", {})
            if perf is not None:
                book["latency_us"] = perf.get("latency_us", {})
                book["counts"] = {
                    k: perf.get(k, 0) for k in ("orders", "fills", "rejects", "cancels")
                }
        finally:
            ctx.destroy(linger=0)
        return book

    # ------------------------------------------------------------------------------ halt
    def halt(self, token: str, reason: str) -> tuple[HTTPStatus, dict[str, Any]]:
        if not self.halt_enabled:
            self.count("dashboard_halt_refused")
            return HTTPStatus.FORBIDDEN, {
                "ok": False,
                "reason": f"halt disabled: {self.cfg.halt_token_env} is not set",
            }
        if not hmac.compare_digest(token.encode(), self._token):
            self.count("dashboard_halt_refused")
            logger.warning("dashboard halt refused: wrong token")
            time.sleep(WRONG_TOKEN_DELAY_S)
            return HTTPStatus.FORBIDDEN, {"ok": False, "reason": "wrong token"}
        reason = reason.strip()[:200] or "halt button"
        self.count("dashboard_halts")
        logger.warning("dashboard halt: {}", reason)
        address = ctl_address(self.run_dir, "supervisor", self.endpoints)
        ctx: zmq.Context[Any] = zmq.Context()
        try:
            rep = request(
                address,
                "halt",
                {"reason": f"dashboard: {reason}", "by": "dashboard"},
                self.halt_timeout_s,
                ctx,
            )
        except CtlTimeout as exc:
            return HTTPStatus.GATEWAY_TIMEOUT, {"ok": False, "reason": str(exc)}
        finally:
            ctx.destroy(linger=0)
        status = HTTPStatus.OK if rep.ok else HTTPStatus.CONFLICT
        return status, {"ok": rep.ok, "code": rep.code, "reason": rep.reason, "data": rep.data}

    # ------------------------------------------------------------------------------ pages
    def state_json(self) -> bytes:
        self.viewed()
        view = self.view
        return json.dumps(
            {
                "now_ns": time.time_ns(),
                "status": view.status if view else None,
                "view_ns": view.built_ns if view else 0,
                "book": self.book,
                "halt_enabled": self.halt_enabled,
                "halt_token_env": self.cfg.halt_token_env,
            }
        ).encode()

    def healthy(self) -> tuple[bool, str]:
        view = self.view
        if view is None:
            return False, "no view yet"
        age = (time.time_ns() - view.built_ns) / 1e9
        if age > HEALTHY_VIEW_AGE_S:
            return False, f"supervisor view {age:.1f}s old"
        return True, "ok"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away mid-answer; never a traceback on stderr
        logger.warning("dashboard connection from {} failed: {}", client_address, sys.exc_info()[1])


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    front: HttpFront
    timeout = 10  # a client that stops sending loses its thread after this long
    server_version = "qts"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: the request line could be anything a client typed

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            "frame-ancestors 'none'; form-action 'none'",
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def do_GET(self) -> None:
        front = self.front
        front.count("http_requests")
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                front.count("metrics_scrapes")
                self._send(200, render(front.view, front.book), PROMETHEUS_TEXT)
            elif path == "/api/state":
                self._send(200, front.state_json(), "application/json")
            elif path == "/healthz":
                ok, text = front.healthy()
                self._send(200 if ok else 503, text.encode(), "text/plain; charset=utf-8")
            elif path in ASSETS:
                text, content_type = ASSETS[path]
                self._send(200, text.encode(), content_type)
            else:
                self._send(404, b"not found", "text/plain; charset=utf-8")
        except Exception:
            front.count("http_errors")
            logger.exception("dashboard GET {} failed", path)
            self._send(500, b"internal error", "text/plain; charset=utf-8")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        front = self.front
        front.count("http_requests")
        if self.path != "/api/halt":
            self._send(404, b"not found", "text/plain; charset=utf-8")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json(400, {"ok": False, "reason": f"body must be 1..{MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length))
            token, reason = body["token"], body.get("reason", "")
            if not isinstance(token, str) or not isinstance(reason, str):
                raise TypeError("token and reason must be strings")
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, {"ok": False, "reason": f"expected JSON {{token, reason}}: {exc}"})
            return
        try:
            status, data = front.halt(token, reason)
        except Exception as exc:
            front.count("http_errors")
            logger.exception("dashboard halt failed")
            self._json(500, {"ok": False, "reason": f"{type(exc).__name__}"})
            return
        self._json(status, data)


def start_front(sup: SupervisorService) -> HttpFront | None:
    """The supervisor's hook: start the HTTP front and publish a view every interval."""
    cfg = sup.settings.metrics
    if not cfg.enabled:
        return None
    rt = sup.settings.runtime
    front = HttpFront(
        cfg,
        rt.run_dir,
        dict(rt.endpoints),
        sup.settings.supervisor.halt_ack_timeout_ms / 1000.0 + 2.0,
    )

    def publish() -> None:
        status = msgspec.json.decode(msgspec.json.encode(sup.cmd_status({})))  # a deep copy
        front.publish(build_view(status, sup.table, time.time_ns(), sup.histograms))
        sup.counters.update(front.counters())

    publish()
    front.start()
    sup.every(cfg.publish_interval_ms / 1000.0, publish)
    return front
