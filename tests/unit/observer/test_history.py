"""MdHistory: the ring of published frames, md_since paging, snapshots as of any held position,
bounded memory, bad requests."""

from __future__ import annotations

import random
from typing import Any

import pytest

from protocol import codec
from protocol.enums import MarketPhase, Side
from protocol.messages import Book, Instrument, PhaseChanged, Trade
from services.observer.engine import MAX_LIMIT, MdHistory, ObserverEngine, state_key

STREAM = 1_700_000_000_000_000_000
SYMBOLS = ["005930", "000660", "035420"]
decode = codec.decoder("md").decode


def raw(i: int, rng: random.Random) -> Any:
    """The i-th event of a small random market: mostly trades and books, some reference data."""
    sym = rng.choice(SYMBOLS)
    kind = rng.random()
    if kind < 0.5:
        return Trade(stream=0, seq=0, symbol=sym, exch_ns=i, price=70_000 + i, qty=1,
                     aggressor=Side.BUY, cum_volume=i)  # fmt: skip
    if kind < 0.9:
        return Book(stream=0, seq=0, symbol=sym, exch_ns=i, bids=[(69_900 + i, 5)],
                    asks=[(70_000 + i, 5)])  # fmt: skip
    if kind < 0.95:
        return Instrument(stream=0, seq=0, symbol=sym, base_price=70_000 + i,
                          upper_limit=91_000, lower_limit=49_000)  # fmt: skip
    return PhaseChanged(stream=0, seq=0, symbol=rng.choice(["", sym]), exch_ns=i,
                        phase=rng.choice(list(MarketPhase)))  # fmt: skip


def publish(n: int, capacity: int, seed: int = 1) -> tuple[MdHistory, list[Any]]:
    """n stamped messages recorded in a history of `capacity`; also returns all of them."""
    rng = random.Random(seed)
    engine = ObserverEngine(stream=STREAM)
    history = MdHistory(STREAM, capacity)
    sent: list[Any] = []
    for i in range(1, n + 1):
        msg = engine.stamp(raw(i, rng), i)
        assert msg is not None
        history.record(msg, codec.encode(msg))
        sent.append(msg)
    return history, sent


def fold(msgs: list[Any]) -> dict[tuple[str, str], Any]:
    """The state a list of messages leaves: the latest per (kind, symbol)."""
    state: dict[tuple[str, str], Any] = {}
    for m in msgs:
        state[state_key(m)] = m
    return state


def test_since_when_seq_held_then_frames_after_it_in_pages() -> None:
    history, sent = publish(50, capacity=100)

    first = history.since(STREAM, 10, limit=15)
    second = history.since(STREAM, first["next"], limit=100)

    assert first["snapshot"] is False and first["state"] == [] and first["base"] == 10
    assert [decode(f).seq for f in first["frames"]] == list(range(11, 26))
    assert first["next"] == 25 and first["more"] is True
    assert [decode(f) for f in second["frames"]] == sent[25:]
    assert second["next"] == 50 and second["more"] is False
    assert (second["stream"], second["seq"], second["first_seq"]) == (STREAM, 50, 1)


def test_since_when_up_to_date_then_nothing_and_no_snapshot() -> None:
    history, _ = publish(5, capacity=10)

    reply = history.since(STREAM, 5)

    assert reply["frames"] == [] and reply["snapshot"] is False
    assert reply["next"] == 5 and reply["more"] is False


def test_since_when_seq_fell_out_then_snapshot_as_of_ring_start_plus_ring() -> None:
    history, sent = publish(1_000, capacity=100)

    reply = history.since(STREAM, 3, limit=MAX_LIMIT)

    assert history.first_seq == 901
    assert reply["snapshot"] is True and reply["base"] == 900
    state = [decode(f) for f in reply["state"]]
    assert [m.seq for m in state] == sorted(m.seq for m in state)  # oldest first
    assert {state_key(m): m for m in state} == fold(sent[:900])
    assert [decode(f) for f in reply["frames"]] == sent[900:]


def test_since_when_other_stream_or_unknown_then_snapshot() -> None:
    history, sent = publish(30, capacity=100)

    for stream in (0, STREAM + 1):
        reply = history.since(stream, 10)
        # the whole stream is still held: an empty snapshot, then every message from seq 1
        assert reply["snapshot"] is True and reply["base"] == 0 and reply["state"] == []
        assert [decode(f) for f in reply["frames"]] == sent


def test_since_when_seq_ahead_of_the_stream_then_snapshot() -> None:
    history, sent = publish(30, capacity=100)

    reply = history.since(STREAM, 31)

    assert reply["snapshot"] is True and [decode(f) for f in reply["frames"]] == sent


def test_since_when_tail_then_snapshot_as_of_last_minus_tail() -> None:
    history, sent = publish(500, capacity=300)

    warm = history.since(0, 0, tail=50, limit=MAX_LIMIT)
    now = history.since(0, 0, tail=0)
    long_tail = history.since(0, 0, tail=10_000, limit=MAX_LIMIT)

    assert warm["base"] == 450
    assert {state_key(m): m for m in map(decode, warm["state"])} == fold(sent[:450])
    assert [decode(f) for f in warm["frames"]] == sent[450:]
    # tail 0: the current state alone (latest instrument, phase, book and trade per symbol)
    assert now["base"] == 500 and now["frames"] == [] and now["more"] is False
    assert {state_key(m): m for m in map(decode, now["state"])} == fold(sent)
    # a tail longer than the ring starts at the ring
    assert long_tail["base"] == 200 and len(long_tail["frames"]) == 300


def test_snapshot_plus_frames_when_any_position_then_same_state_as_the_full_stream() -> None:
    rng = random.Random(5)
    for seed in range(20):
        history, sent = publish(rng.randint(1, 400), capacity=rng.randint(1, 120), seed=seed)
        have = rng.randint(0, len(sent))
        stream = rng.choice([STREAM, 0, 42])
        model = fold(sent[:have]) if stream == STREAM else {}
        got: list[Any] = []
        reply = history.since(stream, have, limit=7)
        got += [decode(f) for f in reply["state"]]
        got += [decode(f) for f in reply["frames"]]
        while reply["more"]:
            reply = history.since(STREAM, reply["next"], limit=7)
            assert reply["snapshot"] is False  # nothing evicted meanwhile: pages follow on
            got += [decode(f) for f in reply["frames"]]
        for m in got:
            model[state_key(m)] = m
        assert model == fold(sent), (seed, have, stream)
        assert reply["next"] == len(sent)


def test_since_when_pages_bounded_by_bytes_then_at_least_one_frame() -> None:
    history, _ = publish(100, capacity=100)

    small = history.since(STREAM, 0, limit=100, max_bytes=1)
    some = history.since(STREAM, 0, limit=100, max_bytes=1_000)

    assert len(small["frames"]) == 1 and small["more"] is True
    assert 1 < len(some["frames"]) < 100
    assert sum(map(len, some["frames"][:-1])) < 1_000


def test_record_when_day_long_then_memory_bounded_by_capacity_and_universe() -> None:
    history, _ = publish(20_000, capacity=500)

    assert sum(e is not None for e in history._ring) == 500
    # at most one Instrument, PhaseChanged, Book and Trade per symbol, and the market phase
    assert len(history._base) <= 4 * len(SYMBOLS) + 1


def test_record_when_seq_jumps_then_ring_restarts_and_state_is_kept() -> None:
    history, sent = publish(10, capacity=100)
    later = Trade(stream=STREAM, seq=20, symbol="005930", exch_ns=1, price=1, qty=1)
    history.record(later, codec.encode(later))

    reply = history.since(STREAM, 5)

    assert history.first_seq == 20
    assert reply["snapshot"] is True and reply["base"] == 19
    assert {state_key(m): m for m in map(decode, reply["state"])} == fold(sent)
    assert [decode(f) for f in reply["frames"]] == [later]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"stream": -1, "seq": 0}, "stream"),
        ({"stream": STREAM, "seq": -5}, "seq"),
        ({"stream": STREAM, "seq": "3"}, "seq"),
        ({"stream": STREAM, "seq": True}, "seq"),
        ({"stream": STREAM, "seq": 0, "limit": 0}, "limit"),
        ({"stream": STREAM, "seq": 0, "tail": -1}, "tail"),
    ],
)
def test_since_when_bad_arguments_then_clear_error(kwargs: dict[str, Any], word: str) -> None:
    history, _ = publish(3, capacity=10)

    with pytest.raises(ValueError, match=word):
        history.since(**kwargs)


def test_history_when_capacity_zero_then_error() -> None:
    with pytest.raises(ValueError, match="capacity"):
        MdHistory(STREAM, 0)


def test_since_when_limit_above_cap_then_capped() -> None:
    history, _ = publish(MAX_LIMIT + 10, capacity=MAX_LIMIT + 10)

    reply = history.since(STREAM, 0, limit=10 * MAX_LIMIT, max_bytes=10**9)

    assert len(reply["frames"]) == MAX_LIMIT and reply["more"] is True
