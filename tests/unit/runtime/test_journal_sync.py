"""JournalSync: catch-up from events_since, live buffering, gap refetch, unreachable execution."""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.enums import Side
from protocol.messages import ExecEvent, OrderFilled
from services.runtime.client import CtlTimeout
from services.runtime.journal_sync import JournalSync


def fill(seq: int) -> OrderFilled:
    return OrderFilled(
        seq=seq, fill_id=f"F{seq}", client_order_id="C", broker_order_no="B", strategy="s",
        symbol="X", side=Side.BUY, qty=1, price=100, leaves_qty=0, exch_ns=0, ts_ns=0,
    )  # fmt: skip


class FakeExecution:
    """events_since over an in-memory journal, `page` events per reply."""

    def __init__(self, last: int, page: int = 2) -> None:
        self.journal = [fill(s) for s in range(1, last + 1)]
        self.page = page
        self.up = True
        self.calls: list[int] = []

    def __call__(self, after: int) -> dict[str, Any]:
        self.calls.append(after)
        if not self.up:
            raise CtlTimeout("down")
        events = [e for e in self.journal if e.seq > after][: self.page]
        return {"events": msgspec.to_builtins(events), "last_seq": len(self.journal)}


def make(fake: FakeExecution) -> tuple[JournalSync, list[int]]:
    applied: list[int] = []

    def apply(ev: ExecEvent) -> None:
        applied.append(ev.seq)

    return JournalSync(fake, apply), applied


def test_catch_up_pages_until_exhausted_then_applies_buffered_live_events() -> None:
    fake = FakeExecution(last=5)
    sync, applied = make(fake)
    sync.live(fill(6))  # arrives while recovering: buffered
    sync.live(fill(5))

    assert sync.catch_up()

    assert applied == [1, 2, 3, 4, 5, 6]
    assert fake.calls == [0, 2, 4]


def test_execution_unreachable_then_error_and_retry_later() -> None:
    fake = FakeExecution(last=2)
    fake.up = False
    sync, applied = make(fake)

    assert not sync.catch_up()
    assert "unavailable" in sync.error and applied == []

    fake.up = True
    assert sync.catch_up() and applied == [1, 2] and sync.error == ""


def test_live_gap_then_missing_range_fetched() -> None:
    fake = FakeExecution(last=2)
    sync, applied = make(fake)
    sync.catch_up()
    fake.journal += [fill(3), fill(4)]

    sync.live(fill(4))  # 3 was lost on the wire

    assert applied == [1, 2, 3, 4] and sync.gaps == 1 and sync.synced


def test_duplicate_live_event_then_ignored() -> None:
    fake = FakeExecution(last=1)
    sync, applied = make(fake)
    sync.catch_up()

    sync.live(fill(1))
    sync.live(fill(2))

    assert applied == [1, 2]
