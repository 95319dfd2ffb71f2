"""One KIS market-data WebSocket session on its own thread: connect, register the table's
(tr_id, stock code) pairs, turn data frames into Trade/Book for poll(), answer PINGPONG, and
on any drop reconnect with back-off and register everything again (a new connection starts
with nothing registered, 5.3).

The approval key comes from a callable: the owner of the session decides how it gets one (it
is an HTTP POST to /oauth2/Approval, and only execution may talk HTTP to a broker; see
docs/brokers/kis.md "Market data"). One session per app key (OPSP8996): a refused session is
dropped and retried with back-off, never opened twice.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import websocket

from protocol.messages import Book, Trade
from services.brokers_md import kis
from services.runtime.log import logger

RECV_TICK_S = 0.25


def today_kst() -> str:
    return time.strftime("%Y%m%d", time.gmtime(time.time() + 9 * 3600))


class KisMarketData:
    def __init__(
        self,
        url: str,
        approval: Callable[[], str],
        stream: int,
        registrations: kis.Registrations | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        idle_timeout_s: float = 300.0,
        day: Callable[[], str] = today_kst,
        max_queue: int = 1_000_000,
    ) -> None:
        if backoff_min_s <= 0 or backoff_max_s < backoff_min_s:
            raise ValueError(f"back-off needs 0 < min <= max, got {backoff_min_s}, {backoff_max_s}")
        self.url, self.approval, self.stream = url, approval, stream
        self.regs = registrations or kis.Registrations()
        self.backoff_min_s, self.backoff_max_s = backoff_min_s, backoff_max_s
        self.idle_timeout_s = idle_timeout_s
        self.day = day
        self.lock = threading.Lock()
        self.events: deque[Trade | Book] = deque(maxlen=max_queue)
        self.pending: list[tuple[str, str, bool]] = []  # (tr, key, subscribe) to send
        self.seq = 0
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.ws: websocket.WebSocket | None = None
        self.up = False
        self.connects = 0
        self.bad_frames = 0
        self.pongs = 0
        self.dropped = 0  # events pushed out of a full queue
        self.answers: dict[tuple[str, str], str] = {}  # (tr, key) -> last msg_cd
        self.rng = random.Random()

    # ------------------------------------------------------------------ owner's side
    def start(self) -> KisMarketData:
        self.thread = threading.Thread(target=self._run, name="kis-md", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def subscribe(
        self, symbols: Iterable[str], trades: bool = True, books: bool = True
    ) -> list[str]:
        """Register symbols (sent now if connected, else on connect); returns those refused
        because the session is full (logged)."""
        with self.lock:
            before = set(self.regs.all())
            left = self.regs.plan(symbols, trades, books)
            self.pending += [
                (tr, key, True) for tr, key in self.regs.all() if (tr, key) not in before
            ]
        if left:
            logger.warning(
                "KIS market data: {} registrations at most per session; not registered: {}",
                self.regs.cap, ", ".join(left),
            )  # fmt: skip
        return left

    def unsubscribe(self, symbol: str) -> None:
        with self.lock:
            for tr in (kis.TRADE_TR, kis.BOOK_TR):
                if self.regs.remove(tr, symbol):
                    self.pending.append((tr, symbol, False))

    def poll(self, limit: int = 10_000) -> list[Trade | Book]:
        out: list[Trade | Book] = []
        while self.events and len(out) < limit:
            out.append(self.events.popleft())
        return out

    @property
    def summary(self) -> str:
        """For a heartbeat's detail (`qts-ctl status`)."""
        return (
            f"KIS market data {'up' if self.up else 'down'}: {len(self.regs)} registrations, "
            f"{self.regs.refused} refused, {self.connects} connects, {self.bad_frames} bad frames"
        )

    def drop(self) -> None:
        ws = self.ws
        if ws is not None:
            try:
                ws.abort()
            except Exception:
                pass

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        attempt = 0
        while not self.stopping.is_set():
            detail = self._session()
            if self.up:
                self.up = False
                attempt = 0
            if self.stopping.is_set():
                break
            delay = min(self.backoff_max_s, self.backoff_min_s * 2**attempt)
            delay *= self.rng.uniform(0.8, 1.2)
            attempt += 1
            logger.warning("KIS market data: {}; reconnecting in {:.1f}s", detail, delay)
            self.stopping.wait(delay)

    def _session(self) -> str:
        try:
            key = self.approval()
        except Exception as exc:
            return f"no approval key: {type(exc).__name__}: {exc}"
        try:
            ws = websocket.create_connection(self.url, timeout=5.0)
        except Exception as exc:
            return f"connect failed: {type(exc).__name__}: {exc}"
        self.ws = ws
        try:
            ws.settimeout(RECV_TICK_S)
            with self.lock:  # a new connection has nothing registered: all of it again
                self.pending = [(tr, k, True) for tr, k in self.regs.all()]
            self.connects += 1
            self.up = True
            last_rx = time.monotonic()
            while not self.stopping.is_set():
                with self.lock:
                    sends, self.pending = self.pending, []
                for tr, k, on in sends:
                    ws.send(kis.subscribe_message(key, tr, k, on))
                try:
                    text = ws.recv()
                except websocket.WebSocketTimeoutException:
                    if time.monotonic() - last_rx > self.idle_timeout_s:
                        return f"nothing received for {self.idle_timeout_s:g}s"
                    continue
                last_rx = time.monotonic()
                if isinstance(text, bytes):
                    text = text.decode("utf-8", "replace")
                if text and (why := self._on_text(ws, text)):
                    return why
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

    def _on_text(self, ws: websocket.WebSocket, text: str) -> str:
        """Handle one frame; a non-empty answer drops the session with that reason."""
        if kis.is_data(text):
            try:
                evs = kis.events(text, stream=self.stream, first_seq=self.seq + 1, day=self.day())
            except kis.MdFrameError as exc:
                self.bad_frames += 1
                logger.warning("KIS market data: unreadable frame dropped: {}", exc)
                return ""
            self.seq += len(evs)
            room = (self.events.maxlen or 0) - len(self.events)
            if len(evs) > room:  # the owner does not poll: the oldest go, counted
                self.dropped += len(evs) - room
            self.events.extend(evs)
            return ""
        try:
            c = kis.parse_control(text)
        except kis.MdFrameError as exc:
            self.bad_frames += 1
            logger.warning("KIS market data: unreadable control frame dropped: {}", exc)
            return ""
        if c.is_pingpong:
            ws.pong(text)  # OTA's answer: a pong frame with the same text (kis.md 5.8)
            self.pongs += 1
            return ""
        if c.msg_cd == "OPSP8996":
            return "app key already in use by another session (OPSP8996)"
        self.answers[(c.tr_id, c.tr_key)] = c.msg_cd
        if not c.ok and c.msg_cd not in ("OPSP0002",):  # 0002: already registered, fine
            with self.lock:
                self.regs.remove(c.tr_id, c.tr_key)
            logger.error(
                "KIS market data: {} {} refused: {} {}", c.tr_id, c.tr_key, c.msg_cd, c.msg1
            )
        return ""
