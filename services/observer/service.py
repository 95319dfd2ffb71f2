"""The observer process: pace a source, stamp it, publish it on `md`.

Pacing never busy-spins (on 2 cores that starves every other stage): a 2 ms timer publishes
the events that came due since the last tick, so 200/s and 50,000/s use the same loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import zmq

from protocol import codec
from protocol.messages import EndOfStream, Instrument
from services.observer.engine import ObserverEngine
from services.observer.replay import ReplayError, read_recording
from services.observer.synthetic import SyntheticSource
from services.runtime.log import logger
from services.runtime.service import Service

TICK_S = 0.002
MAX_BATCH = 5_000


class ObserverService(Service):
    name = "observer"

    def setup(self) -> None:
        cfg = self.settings.observer
        endpoint = cfg.endpoint
        if cfg.source == "synthetic" and endpoint not in ("stub", "synthetic", ""):
            # exit 2 (configuration error): supervisord must not crash-loop a source we lack
            logger.critical(
                "observer.endpoint {!r}: external Observer sources (unix://, ipc://) are not "
                "built yet; use 'stub' or 'replay:<file>'",
                endpoint,
            )
            raise SystemExit(2)
        self.engine = ObserverEngine(stream=time.time_ns())
        self.pub = self.bind(zmq.PUB, "md")
        self.instruments: list[Instrument] = []
        self.replay_speed = 0.0
        if cfg.source == "synthetic":
            source = SyntheticSource(cfg.symbols, cfg.seed, cfg.book_every)
            self.instruments = source.instruments()
            self.events: Iterator[Any] = source.events()
            self.rate = cfg.rate_hz
        elif cfg.replay_path is None:
            logger.critical("observer.source is 'replay' but observer.replay_path is not set")
            raise SystemExit(2)
        else:
            self.events = read_recording(cfg.replay_path)
            self.rate = cfg.rate_hz
            self.replay_speed = cfg.replay_speed
        self.max_events = cfg.max_events
        self.done = False
        self.started = 0.0
        self.finished = 0.0
        self.published_due = 0
        self.first_exch_ns = 0
        self.replay_started = 0.0
        self.pending: Any | None = None
        self.command("stats", self.cmd_stats)
        # the reference-data snapshot a restarted subscriber asks for (Clone pattern) instead of
        # waiting for the next periodic Instrument
        self.command("instruments", lambda args: {"instruments": list(self.instruments)})
        self.every(cfg.instrument_every_s, self.publish_instruments)
        # subscribers connecting to a freshly bound PUB miss its first messages (the slow
        # joiner): repeat the reference data every 50 ms for the first seconds, so that no
        # service (or the venue) sees a trade before it knows the symbol's limits
        self.boot_until = time.monotonic() + 3.0
        self.every(0.05, self._boot_instruments)
        self.every(TICK_S, self.pump)
        self.publish_instruments()

    def publish(self, msg: Any) -> None:
        self.pub.send(codec.encode(msg))

    def _boot_instruments(self) -> None:
        if time.monotonic() < self.boot_until:
            self.publish_instruments()

    def publish_instruments(self) -> None:
        for inst in self.instruments:
            self.publish(self.engine.stamp(inst, time.monotonic_ns()))

    def pump(self) -> None:
        if self.done:
            return
        now = time.monotonic()
        if not self.started:
            self.started = now
        for _ in range(min(self.due(now), MAX_BATCH)):
            if self.max_events and self.engine.events >= self.max_events:
                self.finish(f"source exhausted after {self.engine.events} events")
                return
            event = self.pending if self.pending is not None else self.next_event()
            self.pending = None
            if event is None:
                return
            if not self.replay_due(event, now):
                self.pending = event  # held until its exchange-time gap has passed
                return
            if isinstance(event, Instrument):
                self.instruments = [i for i in self.instruments if i.symbol != event.symbol]
                self.instruments.append(event)
            self.published_due += 1
            if isinstance(event, EndOfStream):
                continue  # a recording's own end marker; we send ours
            stamped = self.engine.stamp(event, time.monotonic_ns())
            if stamped is not None:
                self.publish(stamped)

    def next_event(self) -> Any | None:
        """The source's next event, or None once it is finished (and the stream ended)."""
        try:
            return next(self.events)
        except StopIteration:
            self.finish(f"source exhausted after {self.engine.events} events")
        except ReplayError as exc:
            # a damaged file replays what decodes and then ends; restarting would not help
            self.count("replay_errors")
            logger.error("{}", exc)
            self.finish(f"source exhausted after {self.engine.events} events ({exc})")
        return None

    def replay_due(self, event: Any, now: float) -> bool:
        """At replay_speed N > 0 an event is due once its exchange-time distance from the
        first event, divided by N, has elapsed."""
        if self.settings.observer.source != "replay" or self.replay_speed == 0.0:
            return True
        exch_ns = getattr(event, "exch_ns", 0)
        if not exch_ns:
            return True
        if not self.first_exch_ns:
            self.first_exch_ns, self.replay_started = exch_ns, now
        return (exch_ns - self.first_exch_ns) / 1e9 / self.replay_speed <= now - self.replay_started

    def due(self, now: float) -> int:
        """How many events came due since the last tick (a token bucket at rate_hz). A replay
        is paced by its own exchange timestamps (replay_due) or, at speed 0, as fast as the
        loop allows, a bounded batch per tick so ctl and control are still served."""
        if self.settings.observer.source == "replay":
            return MAX_BATCH
        return int((now - self.started) * self.rate) - self.published_due

    def finish(self, detail: str) -> None:
        self.done = True
        self.finished = time.monotonic()
        self.publish(self.engine.end())
        self.status, self.detail = "done", detail
        logger.info("{}", detail)

    def heartbeat_counters(self) -> dict[str, int]:
        # per-symbol market-data age for the supervisor's stale-data guardrail (10 a second)
        now = time.monotonic()
        out = dict(self.counters)
        for sym, s in self.engine.symbols.items():
            if s.last_mono:
                out[f"md_age_ms.{sym}"] = int((now - s.last_mono) * 1000)
        return out

    def cmd_stats(self, args: dict[str, Any]) -> dict[str, Any]:
        out = self.engine.stats(time.monotonic_ns() / 1e9)
        end = self.finished if self.done else time.monotonic()
        out.update(
            {
                "rate_hz": self.rate,
                "done": self.done,
                "source": self.settings.observer.source,
                # wall time from the first published event to the last (or to now)
                "elapsed_s": round(end - self.started, 3) if self.started else 0.0,
            }
        )
        return out
