"""An external Observer as the observer service's source: connect (and reconnect with back-off),
handshake, read and validate frames, and hand normalised events to the service's pump.

poll() is called from the service's 2 ms pump timer and never blocks; it returns the events that
arrived since the last call (bounded per call, so ctl and control stay served under a flood).
"""

from __future__ import annotations

import random
import time
from typing import Any

import zmq

from services.observer.sources import wire
from services.observer.sources.feed import Feed, FeedConfig, FeedError, HandshakeError
from services.observer.sources.transport import (
    Transport,
    TransportError,
    UnixTransport,
    ZmqTransport,
    parse_endpoint,
)
from services.runtime.log import logger
from services.runtime.settings import Settings

MAX_BYTES_PER_POLL = 4 << 20  # about 40,000 events: a 2 ms tick then 20 M events/s at most
TICK_S = 0.1  # staleness and timeouts


class ExternalSource:
    def __init__(
        self,
        endpoint: str,
        feed: FeedConfig,
        ctx: zmq.Context[Any],
        reconnect_min_ms: int = 100,
        reconnect_max_ms: int = 5000,
        heartbeat_ms: int = 1000,
        silence_ms: int = 3000,
        hello_retry_ms: int = 250,
        rcvhwm: int = 100_000,
    ) -> None:
        scheme, path = parse_endpoint(endpoint)
        self.endpoint = endpoint
        self.transport: Transport = (
            UnixTransport(path)
            if scheme == "unix"
            else ZmqTransport(path, ctx, reconnect_min_ms, reconnect_max_ms, rcvhwm)
        )
        self.feed = Feed(feed)
        self.counters = self.feed.counters
        for key in ("connects", "connect_failures", "disconnects", "events"):
            self.counters[key] = 0
        self.backoff = (reconnect_min_ms / 1000, reconnect_max_ms / 1000)
        self.delay = self.backoff[0]
        self.heartbeat_s = heartbeat_ms / 1000
        self.silence_s = silence_ms / 1000
        self.hello_retry_s = hello_retry_ms / 1000
        self.open = False  # the transport's sockets exist
        self.up = False  # the transport says connected
        self.next_attempt = 0.0
        self.next_heartbeat = 0.0
        self.next_tick = 0.0
        self.hello_at = 0.0
        self.last_event = 0.0
        self.rate = 0.0
        self._rate_mark = (0.0, 0)
        self._last_failure = ""
        self.rng = random.Random()
        self.summary = f"{endpoint} connecting"  # one line for `qts-ctl status` (detail)

    # ------------------------------------------------------------------------- loop
    def poll(self, now: float, in_session: bool) -> list[Any]:
        """Everything that arrived, normalised (stream/seq 0), in arrival order."""
        out: list[Any] = []
        if not self.open and now >= self.next_attempt:
            self.connect(now)
        if self.open:
            try:
                self.read(now, out)
                self.keepalive(now)
                self.send_outbox()
            except HandshakeError as exc:
                logger.critical(
                    "observer endpoint {}: handshake failed: {} (retrying every {:.0f} s)",
                    self.endpoint,
                    exc,
                    self.backoff[1],
                )
                self.drop(now, str(exc), delay=self.backoff[1])
            except (TransportError, FeedError) as exc:
                self.drop(now, str(exc))
        if now >= self.next_tick:
            self.next_tick = now + TICK_S
            self.feed.tick(now, in_session)
            self.measure(now)
            self.summary = self.describe(now)
        if out:
            self.counters["events"] += len(out)
            self.last_event = now
        return out

    def connect(self, now: float) -> None:
        try:
            up = self.transport.open()
        except TransportError as exc:
            self.counters["connect_failures"] += 1
            if str(exc) != self._last_failure:  # log a change, not every attempt
                logger.warning("observer endpoint {}: {}", self.endpoint, exc)
                self._last_failure = str(exc)
            self.feed.disconnected(str(exc))
            self.schedule(now)
            return
        self.open = True
        if up:
            self.came_up(now)

    def came_up(self, now: float) -> None:
        self.up = True
        self.counters["connects"] += 1
        self._last_failure = ""
        logger.info("observer endpoint {}: connected", self.endpoint)
        self.feed.connected(now)
        self.hello_at = now
        self.send_outbox()

    def read(self, now: float, out: list[Any]) -> None:
        transport, feed = self.transport, self.feed
        for event in transport.events():
            if event == "up" and not self.up:
                self.came_up(now)
            elif event == "down" and self.up:
                self.up = False
                self.counters["disconnects"] += 1
                logger.warning("observer endpoint {}: connection lost", self.endpoint)
                feed.disconnected("connection lost")
        handle = feed.handle
        for frame in transport.recv(MAX_BYTES_PER_POLL):
            handle(frame, now, out)
        if feed.status.state == "live" and self.delay != self.backoff[0]:
            self.delay = self.backoff[0]  # a good session resets the back-off
        state = feed.status.state
        if self.up and state in ("live", "handshake") and now - feed.last_frame > self.silence_s:
            raise FeedError(f"the Observer has been silent for {now - feed.last_frame:.1f} s")
        retry = now - self.hello_at > self.hello_retry_s
        if self.up and state == "handshake" and transport.lossy and retry:
            self.hello_at = now
            feed.connected(now)  # the Hello may have beaten our subscription to it

    def keepalive(self, now: float) -> None:
        if self.up and now >= self.next_heartbeat and self.feed.status.state == "live":
            self.next_heartbeat = now + self.heartbeat_s
            self.feed.outbox.append(wire.ClientHeartbeat(ts_ns=time.time_ns()))

    def send_outbox(self) -> None:
        outbox = self.feed.outbox
        if not outbox:
            return
        if self.up:
            for msg in outbox:
                self.transport.send(wire.encode(msg))
        outbox.clear()

    def drop(self, now: float, reason: str, delay: float | None = None) -> None:
        """Close the connection and try again after the back-off."""
        if self.up:
            self.counters["disconnects"] += 1
        if self.feed.status.state != "rejected":
            logger.warning("observer endpoint {}: {}; reconnecting", self.endpoint, reason)
        self.transport.close()
        self.open = self.up = False
        self.feed.disconnected(reason)
        self.feed.outbox.clear()
        self.schedule(now, delay)

    def schedule(self, now: float, delay: float | None = None) -> None:
        lo, hi = self.backoff
        if delay is None:
            delay = self.delay * (0.5 + self.rng.random())  # jitter: restarts do not align
            self.delay = min(hi, max(lo, self.delay * 2))
        self.next_attempt = now + delay

    def measure(self, now: float) -> None:
        at, n = self._rate_mark
        if now - at >= 1.0:
            events = self.counters["events"]
            if at:
                self.rate = (events - n) / (now - at)
            self._rate_mark = (now, events)

    # ------------------------------------------------------------------------- reporting
    def stats(self, now: float) -> dict[str, Any]:
        st = self.feed.status
        return {
            "endpoint": self.endpoint,
            "state": st.state,
            "detail": st.detail,
            "feed_id": st.feed_id,
            "session": st.session,
            "protocol": st.version,
            "seq": self.feed.last_seq,
            "rate_per_s": round(self.rate, 1),
            "last_event_age_ms": round((now - self.last_event) * 1000) if self.last_event else None,
            "stale": self.feed.stale_symbols(),
            "observer_phase": self.feed.market_phase,  # its `session` message, for comparison
            "counters": dict(self.counters),
        }

    def describe(self, now: float) -> str:
        st, c = self.feed.status, self.counters
        text = f"{self.endpoint} {st.state}"
        if st.state != "live":
            return f"{text}: {st.detail}" if st.detail else text
        age = f"{(now - self.last_event) * 1000:.0f} ms" if self.last_event else "never"
        return (
            f"{text}, {self.rate:,.0f} ev/s, last {age}, gaps {c['gaps']} "
            f"({c['gap_messages']} msgs), dups {c['duplicates']}, bad {c['bad_frames']}, "
            f"stale {len(self.feed.stale_symbols())}/{len(self.feed.symbols)}"
        )

    def heartbeat_counters(self) -> dict[str, int]:
        """For the supervisor: feed.<counter>, feed.live (0/1) and md_stale.<symbol> (1)."""
        out = {f"feed.{k}": v for k, v in self.counters.items()}
        out["feed.live"] = int(self.feed.status.state == "live")
        for sym in self.feed.stale_symbols():
            out[f"md_stale.{sym}"] = 1
        return out

    def close(self) -> None:
        self.transport.close()
        self.open = self.up = False


def external_source(settings: Settings, ctx: zmq.Context[Any]) -> ExternalSource:
    """The source for observer.endpoint unix://<path> or ipc://<path> (ValueError if neither)."""
    cfg = settings.observer
    feed = FeedConfig(
        symbols=tuple(cfg.subscribe),
        stale_after_s=cfg.stale_after_ms / 1000,
        snapshot_timeout_s=cfg.snapshot_timeout_ms / 1000,
        flood_frames=cfg.bad_frame_flood,
        flood_window_s=cfg.bad_frame_window_s,
    )
    return ExternalSource(
        cfg.endpoint,
        feed,
        ctx,
        reconnect_min_ms=cfg.reconnect_min_ms,
        reconnect_max_ms=max(cfg.reconnect_max_ms, cfg.reconnect_min_ms),
        heartbeat_ms=cfg.feed_heartbeat_ms,
        silence_ms=cfg.feed_silence_ms,
        rcvhwm=settings.runtime.rcvhwm,
    )
