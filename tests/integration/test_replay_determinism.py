"""Issue 7's "done when": two runs of the same recorded day give identical orders and fills.

The whole system (supervisord, every process, the paper venue) replays the checked-in sample day
twice, each run in its own directory, with the same seed and the deterministic `pulse` strategy.
Orders and fills (symbol, side, quantity, price, in the venue's order) and the final cash and
holdings must be identical, and the books of execution and portfolio must agree with the venue.

Replay pacing (docs/venue.md "Replay through the whole system"): the replay starts once trading
is ACTIVE (observer.replay_wait_active) and runs in lockstep (observer.replay_lockstep): the next
market event goes out once the strategy has taken the last one and execution and the venue have
answered every intent and order it caused. Without it, which book an order meets depends on
whether the next events overtook it on the way to the venue, i.e. on scheduling.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import zmq

from protocol import codec
from protocol.venue import VenueQuery, VenueQueryReply
from services.observer.service import cause_seq
from services.venue.matching import kst_date
from tests.data.make_sample import DAY
from tests.kit import REPO, System, eventually

SAMPLE = REPO / "tests" / "data" / "sample_session.qtsrec.gz"
SAMPLE_MARKET_EVENTS = 3_054  # its trades and books (the observer's `events`)


def replay_config(lockstep: bool = True, **extra: str) -> dict[str, str]:
    """The system replaying the sample day with pulse: shared with tests/bench/replay.py."""
    return {
        "STRATEGY_SCOPE": "pulse",
        "QTS_STRATEGY__PULSE_EVERY": "3",
        "QTS_OBSERVER__SOURCE": "replay",
        "QTS_OBSERVER__REPLAY_PATH": str(SAMPLE),
        "QTS_OBSERVER__REPLAY_SPEED": "0",
        "QTS_OBSERVER__REPLAY_LOCKSTEP": "true" if lockstep else "false",
        "QTS_OBSERVER__REPLAY_WAIT_ACTIVE": "true",
        "QTS_OBSERVER__SEED": "7",
        "QTS_SESSION__CLOCK": "exchange",
        # wall-clock protections: an accelerated day would hit them by its speed, not its data
        "QTS_RISK__DUPLICATE_WINDOW_MS": "0",
        "QTS_RISK__SUBMIT_RATE_PER_S": "10000",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def venue_query(system: System, what: str) -> VenueQueryReply:
    """Ask the venue directly, as the paper adapter does (its own record of orders and fills)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(system.address("venue"))
        sock.send_multipart([b"", codec.encode(VenueQuery(req_id=1, what=what))])
        assert sock.poll(5000), f"the venue did not answer {what!r}"
        reply = codec.decoder("venue_reply").decode(sock.recv_multipart()[-1])
    finally:
        sock.close()
    assert isinstance(reply, VenueQueryReply), reply
    return reply


def settled(system: System, last: list[Any]) -> bool:
    """The replay is over and nothing moved since the previous look: every event reached the
    strategy, every order the venue numbered is closed and execution has journaled it."""
    obs = system.call("observer", "stats")
    if not obs["done"]:
        return False
    strategy = system.call("strategy", "stats")
    if strategy["md"]["seq"] < obs["seq"]:
        return False
    venue = system.call("venue", "orders")["orders"]
    open_exec = system.call("execution", "orders", {"open_only": True, "limit": 100_000})
    open_exec = open_exec["orders"] if isinstance(open_exec, dict) else open_exec
    state = (len(venue), sum(o["filled"] for o in venue), len(open_exec))
    same = last == [state]
    last[:] = [state]
    return same and not any(o["status"] == "OPEN" for o in venue) and not open_exec


def run_day(root: Path, **config: str) -> dict[str, Any]:
    """One deployment replaying the sample day; what it traded."""
    system = System(root, **replay_config(**config))
    try:
        system.start()
        last: list[Any] = []
        eventually(
            lambda: settled(system, last),
            timeout=180,
            interval=1.0,
            message="the replay finished and the system settled",
        )
        obs = system.call("observer", "stats")
        venue_orders = system.call("venue", "orders")["orders"]
        fills = venue_query(system, "fills").fills
        balance = system.call("venue", "balance")
        exec_fills = system.call("execution", "fills")
        exec_fills = exec_fills["fills"] if isinstance(exec_fills, dict) else exec_fills
        portfolio = system.call("portfolio", "positions")
        risk = system.call("risk", "stats")
        strategy = system.call("strategy", "stats")
        counters = {n: system.call(n, "ping")["counters"] for n in ("observer", "strategy")}
    finally:
        system.stop()
    return {
        "events": obs["events"],
        "late_orders": counters["observer"].get("replay_late_orders", 0),
        "unanswered_orders": counters["observer"].get("replay_unanswered_orders", 0),
        "sync_timeouts": counters["observer"].get("replay_sync_timeouts", 0),
        "md_gaps": counters["strategy"].get("md_gaps", 0),
        "orders": [
            (o["symbol"], o["side"], o["qty"], o["price"], o["status"], o["filled"], o["ts_ns"])
            for o in venue_orders
        ],
        "fills": [(f.symbol, f.side.value, f.qty, f.price, f.ts_ns) for f in fills],
        "cash": balance["cash"],
        "holdings": {s: q for s, q in balance["holdings"].items() if q},
        "exec_fills": sorted((f["symbol"], f["side"], f["qty"], f["price"]) for f in exec_fills),
        "portfolio_cash": portfolio["cash"],
        "portfolio_holdings": {
            p["symbol"]: p["qty"]
            for p in portfolio["positions"]
            if p["strategy"] == "" and p["qty"]
        },
        "denied": risk.get("denied"),
        "suppressed": strategy["suppressed"],
    }


@pytest.fixture(scope="module")
def runs() -> list[dict[str, Any]]:
    out = []
    for _ in range(2):
        with tempfile.TemporaryDirectory(prefix="qts-replay-") as tmp:
            out.append(run_day(Path(tmp)))
    return out


def test_the_whole_day_was_replayed_and_traded(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        assert run["events"] == SAMPLE_MARKET_EVENTS
        assert len(run["orders"]) >= 50
        assert len(run["fills"]) >= 50
        assert not run["suppressed"]
        sides = {o[1] for o in run["orders"]}
        assert sides == {"BUY", "SELL"}
        # the venue's clock is the replay's exchange clock: every order and fill is on the day
        assert {kst_date(o[6]) for o in run["orders"]} == {DAY}
        assert {kst_date(f[4]) for f in run["fills"]} == {DAY}


def test_the_lockstep_held(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        # no order reached execution after a later event went out, no wait was given up on
        assert (run["late_orders"], run["sync_timeouts"], run["unanswered_orders"]) == (0, 0, 0)


def test_two_runs_give_identical_orders_and_fills(runs: list[dict[str, Any]]) -> None:
    first, second = runs
    assert first["orders"] == second["orders"]
    assert first["fills"] == second["fills"]
    assert (first["cash"], first["holdings"]) == (second["cash"], second["holdings"])
    assert first["denied"] == second["denied"]


def test_every_book_agrees_with_the_venue(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        venue_fills = sorted((f[0], f[1], f[2], f[3]) for f in run["fills"])
        assert run["exec_fills"] == venue_fills
        assert run["portfolio_cash"] == run["cash"]
        assert run["portfolio_holdings"] == run["holdings"]


def test_cause_seq_reads_the_md_event_an_intent_answered() -> None:
    assert cause_seq("pulse:17:4242:0", 17) == 4242
    assert cause_seq("my:strategy:17:4242:1", 17) == 4242
    assert cause_seq("pulse:18:4242:0", 17) == 0  # another observer incarnation
    assert cause_seq("pulse:x1795:4242:0", 17) == 0  # an order event or timer caused it
    assert cause_seq("garbage", 17) == 0
