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
            raise SystemExit(
                f"observer.endpoint {endpoint!r}: external Observer sources (unix://, ipc://) "
                "are not built yet; use 'stub' or 'replay:<file>'"
            )
        self.engine = ObserverEngine(stream=time.time_ns())
        self.pub = self.bind(zmq.PUB, "md")
        self.instruments: list[Instrument] = []
        self.replay_speed = 0.0
        if cfg.source == "synthetic":
            source = SyntheticSource(cfg.symbols, cfg.seed, cfg.book_every)
            self.instruments = source.instruments()
            self.events: Iterator[Any] = source.events()
            self.rate = cfg.rate_hz
        else:
            assert cfg.replay_path is not None
            self.events = read_recording(cfg.replay_path)
            self.rate = cfg.rate_hz
            self.replay_speed = cfg.replay_speed
        self.max_events = cfg.max_events
        self.done = False
        self.started = 0.0
        self.published_due = 0
        self.first_exch_ns = 0
        self.command("stats", self.cmd_stats)
        self.every(cfg.instrument_every_s, self.publish_instruments)
        self.every(TICK_S, self.pump)
        self.publish_instruments()

    def publish(self, msg: Any) -> None:
        self.pub.send(codec.encode(msg))

    def publish_instruments(self) -> None:
        for inst in self.instruments:
            self.publish(self.engine.stamp(inst, time.monotonic_ns()))

    def pump(self) -> None:
        if self.done:
            return
        now = time.monotonic()
        if not self.started:
            self.started = now
        due = self.due(now)
        for _ in range(min(due, MAX_BATCH)):
            if self.max_events and self.engine.events >= self.max_events:
                self.finish(f"source exhausted after {self.engine.events} events")
                return
            try:
                event = next(self.events)
            except StopIteration:
                self.finish(f"replay finished after {self.engine.events} events")
                return
            except ReplayError as exc:
                self.count("replay_errors")
                logger.error("{}", exc)
                self.finish(f"replay ended by an error after {self.engine.events} events: {exc}")
                return
            if isinstance(event, Instrument):
                self.instruments = [i for i in self.instruments if i.symbol != event.symbol]
                self.instruments.append(event)
            if isinstance(event, EndOfStream):
                continue  # a recording's own end marker; we send ours
            stamped = self.engine.stamp(event, time.monotonic_ns())
            if stamped is not None:
                self.publish(stamped)
            self.published_due += 1

    def due(self, now: float) -> int:
        """How many events came due since the last tick. A replay at speed 0 runs as fast as
        the loop allows; otherwise events are paced at rate_hz (x replay_speed for a replay).
        Pacing a replay by its own exchange timestamps is issue 7's work."""
        if self.settings.observer.source == "replay":
            if self.replay_speed == 0.0:
                return MAX_BATCH
            rate = self.rate * self.replay_speed
        else:
            rate = self.rate
        return int((now - self.started) * rate) - self.published_due

    def finish(self, detail: str) -> None:
        self.done = True
        self.publish(self.engine.end())
        self.status, self.detail = "done", detail
        logger.info("{}", detail)

    def cmd_stats(self, args: dict[str, Any]) -> dict[str, Any]:
        out = self.engine.stats(time.monotonic_ns() / 1e9)
        out.update({"rate_hz": self.rate, "done": self.done, "source":
                    self.settings.observer.source})
        return out
