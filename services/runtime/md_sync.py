"""Clone-pattern recovery on the md stream, for every subscriber of market data.

Live messages go through MdSync.live(), which tracks the observer's (stream, seq): the next seq
is delivered at once, a repeated one is dropped, and a hole (a slow subscriber whose queue
overflowed, or a new stream: the observer restarted and the slow joiner lost its first messages)
holds later messages back while the observer's `md_since` command is asked for the missing ones.
Each attempt blocks the loop for at most `budget_s`; a failed one is retried `retry_s` later
(poll() from a timer), and after `give_up_s` the held messages are delivered anyway and the hole
is counted as lost: stale data is worse than a gap.

Counters (through the service's count()): md_gaps (holes seen), md_recovered (messages fetched
and delivered), md_lost (messages never delivered individually: given up on, or superseded by a
snapshot), md_duplicates, md_new_streams, md_warmup (messages replayed by warm_up()).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from protocol import codec
from protocol.messages import MarketData
from services.runtime import client
from services.runtime.log import logger
from services.runtime.snapshots import fetch_instruments

Fetch = Callable[[int, int, int | None], Any]
"""(stream, seq, tail) -> the observer's md_since reply data."""

FETCH_ERRORS = (
    client.CtlTimeout,
    client.CtlFailed,
    msgspec.ValidationError,
    ValueError,
    OSError,
    zmq.ZMQError,
)


class MdSinceReply(msgspec.Struct, frozen=True):
    """The data of an ok md_since reply (services/observer/engine.py MdHistory.since)."""

    stream: int  # the observer's current stream
    seq: int  # the last seq it published
    first_seq: int  # the oldest seq its history still holds
    snapshot: bool  # True: `state` stands for everything up to `base`
    state: list[bytes]  # latest Instrument/PhaseChanged/Book/Trade per symbol (+ EndOfStream)
    base: int  # frames start at base + 1
    frames: list[bytes]  # base + 1 .. next, contiguous, as published
    next: int
    more: bool  # next < seq: ask again from next


class MdSync:
    def __init__(
        self,
        fetch: Fetch,
        deliver: Callable[[MarketData], object],
        count: Callable[[str, int], None],
        *,
        budget_s: float = 0.25,
        retry_s: float = 0.5,
        give_up_s: float = 5.0,
        max_held: int = 50_000,
    ) -> None:
        self.fetch = fetch
        self.deliver = deliver
        self.count = count
        self.budget_s = budget_s
        self.retry_s = retry_s
        self.give_up_s = give_up_s
        self.max_held = max_held
        self.stream = 0  # 0 until the first message (or warm-up) names one
        self.seq = 0  # the last seq of `stream` delivered
        self.error = ""  # why the open gap is not closed yet
        # True while deliver() gets a message fetched from the observer (warm-up or a gap),
        # not a live one: a strategy updates its state from it but places no order on it
        self.replaying = False
        self.gaps = 0
        self._held: dict[int, MarketData] = {}  # live messages after an open gap, by seq
        self._gap_since = 0.0
        self._retry_at = 0.0
        self._logged: dict[str, float] = {}
        self._decode = codec.decoder("md").decode

    @property
    def recovering(self) -> bool:
        return bool(self._held)

    # ------------------------------------------------------------------ live
    def live(self, msg: MarketData) -> None:
        if msg.stream == 0:
            self.deliver(msg)  # not stamped by an observer: nothing to sequence
            return
        if msg.stream != self.stream:
            if self.stream == 0:
                self.stream, self.seq = msg.stream, msg.seq - 1  # first word: start here
            else:
                self._new_stream(msg.stream, "a live message")
        seq = msg.seq
        if seq <= self.seq or seq in self._held:
            self.count("md_duplicates", 1)
            return
        if not self._held and seq == self.seq + 1:
            self.seq = seq
            self.deliver(msg)
            return
        if len(self._held) >= self.max_held:
            self._give_up(f"{len(self._held)} messages held")
            self.live(msg)
            return
        self._held[seq] = msg
        if len(self._held) == 1:
            self.gaps += 1
            self.count("md_gaps", 1)
            self._gap_since = time.monotonic()
            self._retry_at = 0.0
            self._log(
                "WARNING",
                "gap",
                "md gap: have seq {} of stream {}, got {}; asking the observer",
                self.seq,
                self.stream,
                seq,
            )
        self._release()
        if self._held and time.monotonic() >= self._retry_at:
            self.catch_up()

    def poll(self) -> None:
        """From a timer: retry an open gap that a failed attempt left."""
        if self._held and time.monotonic() >= self._retry_at:
            self.catch_up()

    # ------------------------------------------------------------------ recovery
    def catch_up(self) -> bool:
        """One bounded attempt to close the open gap; True when none is left."""
        start = time.monotonic()
        recovered = 0
        try:
            while self._held:
                reply = msgspec.convert(self.fetch(self.stream, self.seq, None), MdSinceReply)
                n = self._apply(reply, warm=False)
                recovered += n
                self._release()
                if self._held and not n:
                    # what we hold was published before this answer: the observer lacks it
                    self.error = f"the observer has nothing after seq {self.seq}"
                    self._retry_at = time.monotonic() + self.retry_s
                    break
                if self._held and time.monotonic() - start >= self.budget_s:
                    self.error = f"still catching up at seq {self.seq} of {reply.seq}"
                    break
        except FETCH_ERRORS as exc:
            self.error = f"observer md_since unavailable: {exc}"
            self._retry_at = time.monotonic() + self.retry_s
        if not self._held:
            self.error = ""
            self._log(
                "INFO",
                "closed",
                "md gap closed at seq {} of stream {}: {} messages recovered in {:.0f} ms",
                self.seq,
                self.stream,
                recovered,
                (time.monotonic() - start) * 1000,
            )
            return True
        if time.monotonic() - self._gap_since >= self.give_up_s:
            self._give_up(self.error)
            return True
        self._log("WARNING", "open", "md gap open after seq {} ({}); retry", self.seq, self.error)
        return False

    def warm_up(self, tail: int, timeout_s: float, fetch: Fetch | None = None) -> int:
        """Replay the observer's snapshot and up to `tail` of its latest messages through
        deliver(), then continue live from there (tail 0: the snapshot alone). Raises what
        fetch raises if the observer does not answer; the number of messages replayed
        otherwise. `fetch` overrides self.fetch (a longer timeout while nothing is live yet)."""
        fetch = fetch or self.fetch
        deadline = time.monotonic() + timeout_s
        reply = msgspec.convert(fetch(0, 0, tail), MdSinceReply)
        self._held.clear()
        self.stream, self.seq = reply.stream, 0
        n = self._apply(reply, warm=True)
        while reply.more and time.monotonic() < deadline:
            reply = msgspec.convert(fetch(self.stream, self.seq, None), MdSinceReply)
            n += self._apply(reply, warm=True)
        self.count("md_warmup", n)
        return n

    def _apply(self, reply: MdSinceReply, warm: bool) -> int:
        """Deliver what a reply holds beyond self.seq; the number of messages delivered."""
        if reply.stream != self.stream:
            self._new_stream(reply.stream, "md_since")
        self.replaying = True
        try:
            return self._apply_frames(reply, warm)
        finally:
            self.replaying = False

    def _apply_frames(self, reply: MdSinceReply, warm: bool) -> int:
        delivered = 0
        if reply.snapshot:
            for frame in reply.state:
                msg = self._frame(frame)
                if msg is not None and msg.seq > self.seq:
                    self.deliver(msg)
                    delivered += 1
            superseded = reply.base - self.seq - delivered
            if superseded > 0 and not warm:
                self.count("md_lost", superseded)
                logger.warning(
                    "md: the observer no longer holds seq {}..{} of stream {}: state recovered "
                    "from its snapshot, {} intermediate messages lost",
                    self.seq + 1,
                    reply.base,
                    self.stream,
                    superseded,
                )
            self.seq = max(self.seq, reply.base)
        for frame in reply.frames:
            msg = self._frame(frame)
            if msg is None or msg.seq <= self.seq:
                continue
            if msg.seq != self.seq + 1 and not warm:
                self.count("md_lost", msg.seq - self.seq - 1)
            self.seq = msg.seq
            self.deliver(msg)
            delivered += 1
        if not warm:
            self.count("md_recovered", delivered)
        return delivered

    def _frame(self, frame: bytes) -> MarketData | None:
        try:
            msg: MarketData = self._decode(frame)
        except codec.DecodeError as exc:
            self.count("bad_frames.md_since", 1)
            logger.warning("md_since frame does not decode: {}", exc)
            return None
        return msg

    def _release(self) -> None:
        """Deliver held live messages while they follow on; drop those already delivered."""
        for seq in sorted(self._held):
            if seq <= self.seq:
                del self._held[seq]
            elif seq == self.seq + 1:
                self.seq = seq
                self.deliver(self._held.pop(seq))
            else:
                return

    def _give_up(self, reason: str) -> None:
        """Deliver every held message in order and count the holes between them as lost."""
        lost = 0
        for seq in sorted(self._held):
            msg = self._held.pop(seq)
            if seq <= self.seq:
                continue
            lost += seq - self.seq - 1
            self.seq = seq
            self.deliver(msg)
        if lost:
            self.count("md_lost", lost)
            logger.error(
                "md: gave up on {} messages of stream {} ({}); continuing at seq {}",
                lost,
                self.stream,
                reason,
                self.seq,
            )
        self.error = ""

    def _new_stream(self, stream: int, seen_in: str) -> None:
        """The observer restarted: finish the old stream, then start the new one at seq 0 (its
        first messages, lost to the slow joiner, are recovered like any gap)."""
        self._give_up(f"stream {self.stream} ended")
        self.count("md_new_streams", 1)
        logger.warning(
            "md: new observer stream {} (was {}) seen in {}; recovering it from its start",
            stream,
            self.stream,
            seen_in,
        )
        self.stream, self.seq = stream, 0

    def _log(self, level: str, kind: str, fmt: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._logged.get(kind, 0.0) >= 1.0:  # a line a second a kind, whatever the rate
            self._logged[kind] = now
            logger.log(level, fmt + " ({} gaps so far)", *args, self.gaps)


def ctl_fetch(
    address: str, ctx: zmq.Context[Any] | None = None, timeout: float = 0.2, limit: int = 5_000
) -> Fetch:
    """A Fetch that asks the observer's ctl endpoint."""

    def fetch(stream: int, seq: int, tail: int | None) -> Any:
        args: dict[str, Any] = {"stream": stream, "seq": seq, "limit": limit}
        if tail is not None:
            args["tail"] = tail
        return client.call(address, "md_since", args, timeout=timeout, ctx=ctx)

    return fetch


def observer_fetch(service: Any, timeout: float = 0.2) -> Fetch:
    """ctl_fetch for a service's configured observer."""
    rt = service.settings.runtime
    return ctl_fetch(client.ctl_address(rt.run_dir, "observer", rt.endpoints), service.ctx, timeout)


def market_snapshot(
    service: Any, deliver: Callable[[MarketData], object], timeout_s: float = 2.0
) -> int:
    """The observer's current market state (instruments, phases, the last book and trade per
    symbol) through deliver(), for a subscriber of the conflated `marks` stream at start (risk,
    portfolio), which has no sequence to keep. If the observer cannot answer md_since, its
    instrument snapshot; the feed repeats reference data and phases every second anyway.
    Returns how many messages were delivered."""
    try:
        sync = MdSync(observer_fetch(service, timeout=1.0), deliver, service.count)
        n = sync.warm_up(0, timeout_s)
        logger.info("market state from the observer's snapshot: {} messages", n)
        return n
    except FETCH_ERRORS as exc:
        logger.info("no market-data snapshot from the observer ({}); waiting for it", exc)
        instruments = fetch_instruments(service)
        for inst in instruments:
            deliver(inst)
        return len(instruments)
