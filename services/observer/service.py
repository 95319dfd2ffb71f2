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
from protocol.codes import CtlCode
from protocol.enums import MarketPhase, TradingState
from protocol.messages import (
    Book,
    CtlReply,
    EndOfStream,
    ExecEvent,
    Instrument,
    IntentDenied,
    OrderSubmitted,
    PhaseChanged,
    Trade,
)
from services.observer.engine import DEFAULT_LIMIT, MdHistory, ObserverEngine
from services.observer.replay import ReplayError, read_recording
from services.observer.sources.external import ExternalSource, external_source
from services.observer.synthetic import SyntheticSource
from services.runtime import client
from services.runtime.log import logger
from services.runtime.service import DEFERRED, CommandError, Deferred, Service
from services.runtime.session import SessionClock

TICK_S = 0.002
MAX_BATCH = 5_000
# observer.replay_wait_active: how long after the observer hears ACTIVE the replay starts, so that
# every other service has heard it too (the supervisor publishes a change at once, then 10/s)
REPLAY_SETTLE_S = 1.0
# observer.replay_lockstep waits at most this long for the pipeline after an event (an order
# execution never answered, a strategy that does not reply), counts it and goes on
IN_FLIGHT_MAX_S = 2.0
LOCKSTEP_CALL_S = 0.5  # one ctl request to the strategy


def cause_seq(intent_id: str, stream: int) -> int:
    """The md seq a strategy's intent answered (services/runtime/ids.intent_id: strategy:stream:
    seq:n), or 0 if it answered something else (an order event, a timer) or another stream."""
    parts = intent_id.rsplit(":", 3)
    if len(parts) != 4 or parts[1] != str(stream) or not parts[2].isdigit():
        return 0
    return int(parts[2])


class ObserverService(Service):
    name = "observer"

    def setup(self) -> None:
        cfg = self.settings.observer
        endpoint = cfg.endpoint
        if cfg.source == "synthetic" and endpoint not in ("stub", "synthetic", ""):
            # exit 2 (configuration error): supervisord must not crash-loop a source we lack
            logger.critical(
                "observer.endpoint {!r}: expected 'stub', 'replay:<file>', 'unix://<path>' or "
                "'ipc://<path>'",
                endpoint,
            )
            raise SystemExit(2)
        self.engine = ObserverEngine(stream=time.time_ns())
        self.history = MdHistory(self.engine.stream, cfg.history_events)
        self.pub = self.bind(zmq.PUB, "md")
        self.marks = self.bind(zmq.PUB, "marks")
        self.marks_due: dict[str, bytes] = {}  # symbol -> its latest trade's frame, unsent
        self.every(cfg.marks_interval_ms / 1000.0, self.publish_marks)
        self.instruments: list[Instrument] = []
        self.replay_speed = 0.0
        self.external: ExternalSource | None = None
        if cfg.source == "synthetic":
            source = SyntheticSource(cfg.symbols, cfg.seed, cfg.book_every)
            self.instruments = source.instruments()
            self.events: Iterator[Any] = source.events()
            self.rate = cfg.rate_hz
        elif cfg.source == "external":
            try:  # events arrive as the Observer sends them: pump_external, no pacing
                self.external = external_source(self.settings, self.ctx)
            except ValueError as exc:
                logger.critical("{}", exc)
                raise SystemExit(2) from None
            self.events, self.rate = iter(()), cfg.rate_hz
            # (the runtime freezes what setup built out of the collector's passes: bench +15%)
        elif cfg.replay_path is None:
            logger.critical("observer.source is 'replay' but observer.replay_path is not set")
            raise SystemExit(2)
        else:
            self.events = read_recording(cfg.replay_path)
            self.rate = cfg.rate_hz
            self.replay_speed = cfg.replay_speed
        self.replay = cfg.source == "replay"
        self.active_since = 0.0 if self.replay and cfg.replay_wait_active else -1.0
        # a lockstep replay holds its next event until the pipeline is done with the last one
        # (docs/venue.md "Replay through the whole system")
        self.in_flight: dict[str, float] = {}  # client order id -> when seen submitted
        self.market_seq = 0  # the seq of the latest market event (not a repeat) published
        self.lockstep = self.replay and cfg.replay_lockstep
        self.synced_seq = 0  # lockstep: the latest market event the pipeline is done with
        self.sync_since = 0.0  # when the wait for synced_seq began
        self.answered = 0  # intents execution has decided: OrderSubmitted + IntentDenied seen
        self.exec_seq = 0  # the latest exec event seen
        rt = self.settings.runtime
        self.strategy_ctl = client.ctl_address(rt.run_dir, "strategy", rt.endpoints)
        if self.lockstep:
            self.on(self.connect(zmq.SUB, "exec"), "exec", self.on_exec)
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
        self.command("md_since", self.cmd_md_since)
        self.every(cfg.instrument_every_s, self.publish_instruments)
        # the market-wide phase from the exchange clock (settings.session), on every change
        self.session = SessionClock(self.settings.session)
        self.market_phase: PhaseChanged | None = None
        self.exch_clock_ns = 0  # a replay's clock: the exchange time of its latest event
        self.every(0.2, self.check_phase)
        self.check_phase()
        # subscribers connecting to a freshly bound PUB miss its first messages (the slow
        # joiner): repeat the reference data every 50 ms for the first seconds, so that no
        # service (or the venue) sees a trade before it knows the symbol's limits
        self.boot_until = time.monotonic() + 3.0
        self.every(0.05, self._boot_instruments)
        self.every(TICK_S, self.pump)
        self.publish_instruments()

    def publish(self, msg: Any) -> None:
        frame = codec.encode(msg)
        self.pub.send(frame)
        self.history.record(msg, frame)  # for md_since: a subscriber that missed it asks
        if isinstance(msg, Trade):
            self.marks_due[msg.symbol] = frame  # conflated: only the latest goes out
        elif not isinstance(msg, Book):
            self.marks.send(frame)  # reference data, phases, end of stream: at once

    def publish_marks(self) -> None:
        for frame in self.marks_due.values():
            self.marks.send(frame)
        self.marks_due.clear()

    def _boot_instruments(self) -> None:
        if time.monotonic() < self.boot_until:
            self.publish_instruments()

    def check_phase(self) -> None:
        replay = self.settings.observer.source == "replay"
        when = self.exch_clock_ns if replay else time.time_ns()
        if not when:
            return  # a replay's clock starts with its first event
        phase, closes_ns = self.session.at(when)
        current = self.market_phase
        if current is not None and (current.phase, current.closes_ns) == (phase, closes_ns):
            return
        if current is None or current.phase is not phase:
            logger.info("market phase {} (session ends {})", phase.value, closes_ns or "never")
        self.market_phase = PhaseChanged(
            stream=0, seq=0, symbol="", exch_ns=when, phase=phase, closes_ns=closes_ns
        )
        stamped = self.engine.stamp(self.market_phase, time.monotonic_ns())
        if stamped is not None:
            self.publish(stamped)
            self.market_seq = stamped.seq

    def publish_instruments(self) -> None:
        if getattr(self, "market_phase", None) is not None:
            # repeated with the reference data: a late joiner learns the phase too
            self.publish(self.engine.stamp(self.market_phase, time.monotonic_ns()))
        for inst in self.instruments:
            self.publish(self.engine.stamp(inst, time.monotonic_ns()))

    def pump(self) -> None:
        if self.external is not None:
            self.pump_external(self.external)
            return
        if self.done:
            return
        now = time.monotonic()
        if not self.replay_may_start(now):
            return
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
            if self.lockstep and (self.orders_in_flight(now) or not self.caught_up(now)):
                self.pending = event  # held: the pipeline is not done with the last event
                return
            if isinstance(event, Instrument):
                self.instruments = [i for i in self.instruments if i.symbol != event.symbol]
                self.instruments.append(event)
            self.published_due += 1
            if isinstance(event, EndOfStream):
                continue  # a recording's own end marker; we send ours
            exch_ns = getattr(event, "exch_ns", 0)
            if exch_ns and exch_ns != self.exch_clock_ns:
                self.exch_clock_ns = exch_ns
                if self.replay:
                    # the phase at this event's exchange time goes out before the event, at the
                    # same place in the stream on every run (the 0.2 s timer would put it
                    # wherever the wall clock happened to be: a fast replay's phases would move)
                    self.check_phase()
            stamped = self.engine.stamp(event, time.monotonic_ns())
            if stamped is not None:
                self.publish(stamped)
                self.market_seq = stamped.seq

    def pump_external(self, source: ExternalSource) -> None:
        # staleness counts only while the market trades continuously (by QTS's own clock)
        phase = self.market_phase.phase if self.market_phase is not None else None
        events = source.poll(time.monotonic(), phase is MarketPhase.CONTINUOUS)
        observed = time.monotonic_ns()  # one read: the frames arrived together
        self.detail = source.summary  # heartbeat detail: `qts-ctl status` shows the source
        stamp, publish = self.engine.stamp, self.publish
        for event in events:
            if isinstance(event, Instrument):
                self.instruments = [i for i in self.instruments if i.symbol != event.symbol]
                self.instruments.append(event)
            stamped = stamp(event, observed)
            if stamped is not None:
                publish(stamped)

    def teardown(self) -> None:
        if self.external is not None:
            self.external.close()

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

    def replay_may_start(self, now: float) -> bool:
        """With observer.replay_wait_active, a replay waits until trading has been ACTIVE for
        REPLAY_SETTLE_S: every service is up, subscribed and trading when the first event goes
        out (a replay started with the processes would be half over before they were)."""
        if self.active_since < 0:
            return True
        if self.trading_state is not TradingState.ACTIVE:
            self.active_since = 0.0
            return False
        if not self.active_since:
            self.active_since = now
            logger.info("trading is ACTIVE: the replay starts in {} s", REPLAY_SETTLE_S)
        if now - self.active_since < REPLAY_SETTLE_S:
            return False
        self.active_since = -1.0  # started: a later halt does not pause the recording
        return True

    def on_exec(self, event: ExecEvent) -> None:
        """Track the orders execution has sent to the broker and not yet heard back on."""
        self.exec_seq = max(self.exec_seq, event.seq)
        if isinstance(event, OrderSubmitted | IntentDenied):
            self.answered += 1
        if isinstance(event, OrderSubmitted):
            self.in_flight[event.client_order_id] = time.monotonic()
            cause = cause_seq(event.intent_id, self.engine.stream)
            if cause and cause < self.market_seq:
                # a later market event went out before this order reached execution: the venue
                # may have taken it first (the lockstep exists so that this never happens)
                self.count("replay_late_orders")
        elif hasattr(event, "client_order_id"):  # accepted, rejected, filled or canceled
            self.in_flight.pop(event.client_order_id, None)

    def orders_in_flight(self, now: float) -> bool:
        """Whether an order execution sent has not been answered yet (the venue has not matched
        it); one unanswered for IN_FLIGHT_MAX_S is counted and no longer waited for."""
        for cid, since in list(self.in_flight.items()):
            if now - since > IN_FLIGHT_MAX_S:
                del self.in_flight[cid]
                self.count("replay_unanswered_orders")
                logger.warning("replay: order {} unanswered for {} s", cid, IN_FLIGHT_MAX_S)
        return bool(self.in_flight)

    def caught_up(self, now: float) -> bool:
        """observer.replay_lockstep: whether the pipeline is done with the latest market event:
        the strategy has taken it, execution has decided every intent the strategy sent (each
        one is an OrderSubmitted or an IntentDenied on `exec`) and the strategy has every exec
        event seen so far. Two ctl requests to the strategy; the venue part is in_flight."""
        if self.synced_seq >= self.market_seq:
            return True
        if not self.sync_since:
            self.sync_since = now
        intents = 0
        try:
            stats = client.call(self.strategy_ctl, "stats", None, LOCKSTEP_CALL_S, self.ctx)
            md = stats["md"]
            done = (
                md["stream"] == self.engine.stream
                and md["seq"] >= self.market_seq
                and stats["exec_seq"] >= self.exec_seq
            )
            if done:
                ping = client.call(self.strategy_ctl, "ping", None, LOCKSTEP_CALL_S, self.ctx)
                intents = ping["counters"].get("intents", 0)
                done = intents <= self.answered
        except (client.CtlTimeout, client.CtlFailed, KeyError, TypeError) as exc:
            logger.warning("replay lockstep: strategy: {!r}", exc)
            done = False
        if not done and now - self.sync_since < IN_FLIGHT_MAX_S:
            return False
        if not done:
            self.count("replay_sync_timeouts")
            logger.warning("replay lockstep: gave up waiting for seq {}", self.market_seq)
            # intents that never became an exec event (dropped, a resent duplicate, sent before
            # this observer subscribed) are not waited for again
            self.answered = max(self.answered, intents)
        self.synced_seq, self.sync_since = self.market_seq, 0.0
        return True

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
        if self.external is not None:  # feed.* counters and md_stale.<symbol>
            out.update(self.external.heartbeat_counters())
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
        if self.external is not None:  # state, rate, last event age, gap/drop counts
            out["external"] = self.external.stats(time.monotonic())
        return out

    def cmd_md_since(self, args: dict[str, Any]) -> Deferred:
        """Clone-pattern recovery: {stream, seq, limit?, tail?} -> the frames after (stream, seq),
        or a snapshot and what follows it (services/observer/engine.py MdHistory.since). Frames
        go out as msgpack bin, as published, so the reply is sent here, not via to_builtins."""
        try:
            data = self.history.since(
                stream=args.get("stream", 0),
                seq=args.get("seq", 0),
                limit=args.get("limit", DEFAULT_LIMIT),
                tail=args.get("tail"),
            )
        except ValueError as exc:
            raise CommandError(CtlCode.BAD_REQUEST, str(exc)) from exc
        self.count("md_since_requests")
        self.reply(
            args["_identity"],
            CtlReply(request_id=args["_request_id"], ok=True, code=CtlCode.OK, data=data),
        )
        return DEFERRED
