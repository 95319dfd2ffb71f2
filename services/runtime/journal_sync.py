"""Clone-pattern catch-up on the execution journal: fetch every event after the last applied seq
from execution's `events_since`, buffer live events meanwhile, apply in seq order, and fetch
again on a live gap. Never blocks the loop for more than ~1 s per attempt."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from protocol.messages import ExecEvent
from services.runtime import client

if TYPE_CHECKING:
    from services.runtime.service import Service

Fetch = Callable[[int], dict[str, Any]]


class JournalSync:
    def __init__(self, fetch: Fetch, apply: Callable[[ExecEvent], object], budget_s: float = 1.0):
        self.fetch = fetch
        self.apply = apply
        self.budget_s = budget_s
        self.applied = 0
        self.synced = False  # caught up with the journal at least once, no open gap
        self.error = ""
        self.gaps = 0
        self._buffer: dict[int, ExecEvent] = {}

    def live(self, event: ExecEvent) -> None:
        seq = event.seq
        if seq <= self.applied:
            return  # already applied (replay or recovery overlap)
        if self.synced and seq == self.applied + 1 and not self._buffer:
            self._apply(event)
            return
        self._buffer[seq] = event
        if self.synced:  # a gap: fetch the missing range now
            self.gaps += 1
            self.synced = False
            self.catch_up()

    def _apply(self, event: ExecEvent) -> None:
        self.apply(event)
        self.applied = max(self.applied, event.seq)

    def catch_up(self) -> bool:
        """One bounded attempt; True when caught up. Errors are kept in self.error."""
        deadline = time.monotonic() + self.budget_s
        try:
            while True:
                reply = self.fetch(self.applied)
                events = [msgspec.convert(d, ExecEvent) for d in reply.get("events", [])]
                for ev in sorted(events, key=lambda e: e.seq):
                    if ev.seq > self.applied:
                        self._apply(ev)
                last = int(reply.get("last_seq", self.applied))
                if not events or self.applied >= last:
                    break
                if time.monotonic() >= deadline:
                    self.error = f"still catching up at seq {self.applied} of {last}"
                    return False
        except (
            client.CtlTimeout,
            client.CtlFailed,
            msgspec.ValidationError,
            ValueError,
            OSError,
        ) as exc:
            self.error = f"execution journal unavailable: {exc}"
            return False
        # the journal is exhausted: now the buffered live events, while they are contiguous
        for seq in sorted(self._buffer):
            if seq <= self.applied:
                del self._buffer[seq]
            elif seq == self.applied + 1:
                self._apply(self._buffer.pop(seq))
            else:
                self.error = f"gap after seq {self.applied} (next buffered {seq})"
                return False
        self.error = ""
        self.synced = True
        return True


def ctl_fetch(address: str, timeout: float = 0.5) -> Fetch:
    def fetch(after: int) -> dict[str, Any]:
        data = client.call(address, "events_since", {"seq": after}, timeout=timeout)
        if not isinstance(data, dict):
            raise ValueError(f"events_since answered {type(data).__name__}")
        return data

    return fetch


def fetch_history(service: Service, after_seq: int = 0) -> list[ExecEvent]:
    """Every execution event after `after_seq`, paged, for a service that rebuilds once at
    start (strategy, risk). Raises client.CtlTimeout / CtlFailed if execution is not up."""
    rt = service.settings.runtime
    address = client.ctl_address(rt.run_dir, "execution", rt.endpoints)
    events: list[ExecEvent] = []
    while True:
        data = client.call(
            address,
            "events_since",
            {"seq": after_seq, "limit": 5000},
            timeout=1.0,
            ctx=service.ctx,
        )
        batch = [msgspec.convert(e, ExecEvent) for e in data["events"]]
        events.extend(batch)
        if not batch:
            return events
        after_seq = batch[-1].seq
