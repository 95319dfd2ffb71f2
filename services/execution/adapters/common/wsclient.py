"""A WebSocket client on its own thread that reconnects with back-off.

websocket-client's blocking WebSocket, read with a short timeout so the thread notices stop()
and a silent connection (nothing received for idle_timeout_s: a "stale" session that never
closed). After every (re)connection on_open(ws) runs first (the broker adapter fetches its
approval key and subscribes there); if it raises, the connection is dropped and retried.
on_state(up, detail) reports each connect and disconnect, so the adapter can tell execution
that notices may have been lost. Ping frames are answered by the library; text-level
keep-alives (KIS PINGPONG) are the broker module's business.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import websocket

from services.runtime.log import logger


class Backoff:
    """Doubling delays between min_s and max_s with +-20% jitter; reset() after a success."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if min_s <= 0 or max_s < min_s:
            raise ValueError(f"back-off needs 0 < min_s <= max_s, got {min_s}, {max_s}")
        self.min_s, self.max_s = min_s, max_s
        self.rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        base = min(self.max_s, self.min_s * (2**self.attempt))
        self.attempt += 1
        return base * self.rng.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.attempt = 0


class ReconnectingWebSocket:
    def __init__(
        self,
        name: str,
        url: Callable[[], str],
        on_open: Callable[[websocket.WebSocket], None],
        on_text: Callable[[websocket.WebSocket, str], None],
        on_state: Callable[[bool, str], None],
        backoff: Backoff,
        connect_timeout_s: float = 5.0,
        idle_timeout_s: float = 300.0,
    ) -> None:
        self.name = name
        self.url = url
        self.on_open = on_open
        self.on_text = on_text
        self.on_state = on_state
        self.backoff = backoff
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.ws: websocket.WebSocket | None = None
        self.connects = 0
        self.up = False

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"ws-{self.name}", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def drop(self) -> None:
        """Close the current connection (it will reconnect): for a broker-level error that
        needs a fresh session."""
        ws = self.ws
        if ws is not None:
            try:
                ws.abort()
            except Exception:
                pass

    def _run(self) -> None:
        while not self.stopping.is_set():
            detail = self._session()
            if self.up:
                self.up = False
                self.on_state(False, detail)
            if self.stopping.is_set():
                break
            delay = self.backoff.next()
            logger.warning("{} websocket: {}; reconnecting in {:.1f}s", self.name, detail, delay)
            self.stopping.wait(delay)

    def _session(self) -> str:
        try:
            ws = websocket.create_connection(self.url(), timeout=self.connect_timeout_s)
        except Exception as exc:
            return f"connect failed: {type(exc).__name__}: {exc}"
        self.ws = ws
        try:
            ws.settimeout(0.25)
            self.on_open(ws)
            self.connects += 1
            self.up = True
            self.backoff.reset()
            self.on_state(True, "connected")
            last_rx = time.monotonic()
            while not self.stopping.is_set():
                try:
                    data = ws.recv()
                except websocket.WebSocketTimeoutException:
                    if time.monotonic() - last_rx > self.idle_timeout_s:
                        return f"nothing received for {self.idle_timeout_s:g}s"
                    continue
                last_rx = time.monotonic()
                if isinstance(data, bytes):
                    data = data.decode("utf-8", "replace")
                if data == "":
                    continue  # a control frame (pong) surfaced as empty data
                self.on_text(ws, data)
            return "stopped"
        except websocket.WebSocketConnectionClosedException:
            return "connection closed by the server"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            self.ws = None
            try:
                ws.close(timeout=0.2)
            except Exception:
                pass
