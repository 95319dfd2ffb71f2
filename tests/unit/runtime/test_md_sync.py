"""MdSync against a real MdHistory (the observer's side of md_since): in-order delivery,
duplicates, gaps fetched, a new stream after an observer restart, a subscriber that fell behind
the history (snapshot), an unreachable observer (retry, then give up), warm-up."""

from __future__ import annotations

import random
from typing import Any

import pytest

from protocol import codec
from protocol.enums import Side
from protocol.messages import Book, MarketData, Trade
from services.observer.engine import MdHistory, ObserverEngine, state_key
from services.runtime.client import CtlTimeout
from services.runtime.md_sync import MdSync

SYMBOLS = ["005930", "000660"]


class Observer:
    """Stamps, records and 'publishes' (returns) md like the observer; answers md_since from its
    history, `page` frames a reply, or raises CtlTimeout while down."""

    def __init__(self, stream: int, capacity: int = 1_000, page: int = 3) -> None:
        self.engine = ObserverEngine(stream)
        self.history = MdHistory(stream, capacity)
        self.page = page
        self.up = True
        self.calls: list[tuple[int, int, int | None]] = []
        self.n = 0

    def publish(self) -> Any:
        self.n += 1
        sym = SYMBOLS[self.n % 2]
        if self.n % 3:
            raw: Any = Trade(stream=0, seq=0, symbol=sym, exch_ns=self.n, price=1_000 + self.n,
                             qty=1, aggressor=Side.BUY, cum_volume=self.n)  # fmt: skip
        else:
            raw = Book(stream=0, seq=0, symbol=sym, exch_ns=self.n, bids=[(999, 1)],
                       asks=[(1_000, 1)])  # fmt: skip
        msg = self.engine.stamp(raw, self.n)
        self.history.record(msg, codec.encode(msg))
        return msg

    def __call__(self, stream: int, seq: int, tail: int | None) -> dict[str, Any]:
        self.calls.append((stream, seq, tail))
        if not self.up:
            raise CtlTimeout("observer down")
        return self.history.since(stream, seq, limit=self.page, tail=tail)


class Subscriber:
    def __init__(self, observer: Observer, **kw: Any) -> None:
        self.got: list[MarketData] = []
        self.counters: dict[str, int] = {}
        self.sync = MdSync(observer, self.got.append, self.count, **kw)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def seqs(self) -> list[int]:
        return [m.seq for m in self.got]


def test_live_when_in_order_then_delivered_without_asking() -> None:
    obs = Observer(stream=7)
    sub = Subscriber(obs)
    msgs = [obs.publish() for _ in range(5)]

    for m in msgs[2:]:  # a subscriber that joins late starts where it joins
        sub.sync.live(m)

    assert sub.got == msgs[2:] and obs.calls == [] and sub.counters == {}
    assert (sub.sync.stream, sub.sync.seq) == (7, 5)


def test_live_when_duplicates_then_dropped_and_counted() -> None:
    obs = Observer(stream=7)
    sub = Subscriber(obs)
    msgs = [obs.publish() for _ in range(4)]

    for m in [msgs[0], msgs[1], msgs[1], msgs[2], msgs[0], msgs[3], msgs[3]]:
        sub.sync.live(m)

    assert sub.got == msgs
    assert sub.counters == {"md_duplicates": 3}


def test_live_when_gap_then_missing_fetched_in_pages_and_delivered_once_in_order() -> None:
    obs = Observer(stream=7, page=3)
    sub = Subscriber(obs)
    msgs = [obs.publish() for _ in range(20)]

    sub.sync.live(msgs[0])
    sub.sync.live(msgs[1])
    for m in msgs[12:]:  # 3..12 lost in transit
        sub.sync.live(m)

    assert sub.got == msgs
    # pages of 3 from seq 2 up to the held 13 (3..14); 14 then arrives live again: a duplicate
    assert sub.counters == {"md_gaps": 1, "md_recovered": 12, "md_duplicates": 1}
    assert obs.calls[0] == (7, 2, None) and not sub.sync.recovering


def test_live_when_observer_restarted_then_new_stream_recovered_from_its_start() -> None:
    old = Observer(stream=7)
    sub = Subscriber(old)
    first = [old.publish() for _ in range(3)]
    for m in first:
        sub.sync.live(m)
    new = Observer(stream=8)  # the restarted observer: a new stream, seq from 1 again
    sub.sync.fetch = new
    second = [new.publish() for _ in range(6)]

    for m in second[4:]:  # the slow joiner missed the new stream's first four
        sub.sync.live(m)

    assert sub.got == first + second
    assert sub.counters["md_new_streams"] == 1 and sub.counters["md_gaps"] == 1
    assert "md_lost" not in sub.counters
    assert (sub.sync.stream, sub.sync.seq) == (8, 6)


def test_gap_when_observer_restarts_during_recovery_then_held_kept_and_new_stream_taken() -> None:
    old = Observer(stream=7)
    sub = Subscriber(old)
    msgs = [old.publish() for _ in range(6)]
    old.up = False
    sub.sync.live(msgs[0])
    sub.sync.live(msgs[4])  # gap 2..4, observer unreachable: held
    new = Observer(stream=8)
    fresh = [new.publish() for _ in range(2)]
    sub.sync.fetch = new

    sub.sync.poll()  # retry_at is in the future: nothing yet
    sub.sync._retry_at = 0.0
    sub.sync.poll()

    # the old stream's held message is delivered (2..4 are gone with the old observer)
    assert sub.got == [msgs[0], msgs[4], *fresh]
    assert sub.counters["md_lost"] == 3 and sub.counters["md_new_streams"] == 1


def test_gap_when_fell_behind_the_history_then_snapshot_and_lost_counted() -> None:
    obs = Observer(stream=7, capacity=10, page=100)
    sub = Subscriber(obs)
    msgs = [obs.publish() for _ in range(40)]
    sub.sync.live(msgs[0])

    sub.sync.live(msgs[39])

    # the latest book and trade per symbol as of seq 30, then 31..40 one by one
    assert [m.seq for m in sub.got[-10:]] == list(range(31, 41))
    state = {state_key(m): m for m in sub.got}
    assert state == {state_key(m): m for m in msgs}
    assert sub.counters["md_lost"] == 29 - (len(sub.got) - 11)
    assert sub.seqs() == sorted(sub.seqs()) and len(set(sub.seqs())) == len(sub.got)


def test_gap_when_observer_unreachable_then_retried_later_then_recovered() -> None:
    obs = Observer(stream=7)
    sub = Subscriber(obs, retry_s=60.0)
    msgs = [obs.publish() for _ in range(8)]
    obs.up = False
    sub.sync.live(msgs[0])
    sub.sync.live(msgs[3])
    sub.sync.live(msgs[4])

    assert sub.got == [msgs[0]] and sub.sync.recovering
    assert len(obs.calls) == 1  # the failed attempt is not repeated before retry_s
    assert "unavailable" in sub.sync.error
    obs.up = True
    sub.sync._retry_at = 0.0  # retry_s has passed
    sub.sync.poll()

    assert sub.got == msgs[:5] and not sub.sync.recovering and sub.sync.error == ""
    for m in msgs[5:]:
        sub.sync.live(m)
    assert sub.got == msgs and sub.counters["md_gaps"] == 1


def test_gap_when_observer_down_past_give_up_then_held_delivered_and_lost_counted() -> None:
    obs = Observer(stream=7)
    sub = Subscriber(obs, give_up_s=0.0)
    msgs = [obs.publish() for _ in range(8)]
    obs.up = False

    sub.sync.live(msgs[0])
    sub.sync.live(msgs[5])  # 2..5 missing, observer unreachable, no patience
    sub.sync.live(msgs[6])

    assert sub.got == [msgs[0], msgs[5], msgs[6]]
    assert sub.counters["md_lost"] == 4 and not sub.sync.recovering


def test_live_when_held_messages_overflow_then_given_up() -> None:
    obs = Observer(stream=7)
    sub = Subscriber(obs, max_held=3)
    msgs = [obs.publish() for _ in range(10)]
    obs.up = False

    sub.sync.live(msgs[0])
    for m in msgs[4:9]:
        sub.sync.live(m)

    assert sub.seqs() == [1, 5, 6, 7, 8, 9]
    assert sub.counters["md_lost"] == 3


def test_catch_up_when_budget_spent_then_continues_on_the_next_attempt() -> None:
    obs = Observer(stream=7, page=2)
    sub = Subscriber(obs, budget_s=0.0)
    msgs = [obs.publish() for _ in range(12)]
    sub.sync.live(msgs[0])

    sub.sync.live(msgs[11])  # one page per attempt
    assert sub.seqs() == [1, 2, 3] and sub.sync.recovering
    while sub.sync.recovering:
        sub.sync.poll()

    assert sub.got == msgs


def test_warm_up_when_tail_then_snapshot_and_tail_then_live_without_duplicates() -> None:
    obs = Observer(stream=7, capacity=100, page=4)
    msgs = [obs.publish() for _ in range(60)]
    sub = Subscriber(obs)

    n = sub.sync.warm_up(tail=20, timeout_s=5.0)
    later = [obs.publish() for _ in range(3)]
    for m in msgs[-5:] + later:  # the socket's queue overlaps the replay
        sub.sync.live(m)

    assert n == len(sub.got) - 3
    assert [m.seq for m in sub.got[-23:]] == list(range(41, 64))
    assert {state_key(m): m for m in sub.got} == {state_key(m): m for m in msgs + later}
    assert sub.counters["md_warmup"] == n and sub.counters["md_duplicates"] == 5
    assert "md_lost" not in sub.counters and "md_recovered" not in sub.counters


def test_warm_up_when_observer_down_then_raises_for_the_caller() -> None:
    obs = Observer(stream=7)
    obs.up = False
    sub = Subscriber(obs)

    with pytest.raises(CtlTimeout):
        sub.sync.warm_up(tail=10, timeout_s=1.0)


def test_live_when_random_drops_and_repeats_then_every_message_once_in_order() -> None:
    rng = random.Random(3)
    obs = Observer(stream=7, capacity=10_000, page=50)
    sub = Subscriber(obs)
    sent = [obs.publish() for _ in range(3_000)]

    for m in sent:
        r = rng.random()
        if r < 0.2:
            continue  # lost in transit
        sub.sync.live(m)
        if r > 0.95:
            sub.sync.live(m)  # repeated

    assert sub.got[0] == sent[0] or sub.got[0].seq > 1
    assert sub.seqs() == list(range(sub.got[0].seq, 3_001))
    assert "md_lost" not in sub.counters


def test_replaying_when_delivering_fetched_messages_then_true_only_for_those() -> None:
    obs = Observer(stream=7, page=100)
    sub = Subscriber(obs)
    marks: list[tuple[int, bool]] = []
    sub.sync.deliver = lambda m: marks.append((m.seq, sub.sync.replaying))
    msgs = [obs.publish() for _ in range(8)]

    for m in [msgs[0], msgs[1], msgs[5], msgs[6], msgs[7]]:
        sub.sync.live(m)

    # 3..8 fetched (the observer held them all by then), 6 held live and 7, 8 duplicates
    assert marks == [(1, False), (2, False)] + [(s, True) for s in range(3, 9)]
    assert not sub.sync.replaying


def test_gap_when_observer_lacks_what_is_held_then_no_spinning_and_retry_later() -> None:
    live = Observer(stream=7)
    stale = Observer(stream=7)  # answers md_since, but only knows seq 1..3
    msgs = [live.publish() for _ in range(6)]
    for _ in range(3):
        stale.publish()
    sub = Subscriber(stale, retry_s=60.0)

    sub.sync.live(msgs[0])
    sub.sync.live(msgs[5])

    assert sub.seqs() == [1, 2, 3] and sub.sync.recovering
    assert len(stale.calls) == 2  # the second answer brought nothing: wait for the retry
    assert "nothing after seq 3" in sub.sync.error
    sub.sync.poll()
    assert len(stale.calls) == 2


def test_live_when_message_not_stamped_then_passed_through() -> None:
    obs = Observer(stream=7)
    sub = Subscriber(obs)
    raw = Trade(stream=0, seq=0, symbol="005930", exch_ns=0, price=1, qty=1)

    sub.sync.live(raw)
    sub.sync.live(raw)

    assert sub.got == [raw, raw] and sub.sync.stream == 0 and obs.calls == []
