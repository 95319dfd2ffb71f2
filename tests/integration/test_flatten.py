"""`qts-ctl halt --flatten` (issue 3): close every position with reduce-only orders, then halt.

pulse trades marketable orders fast, so positions and working orders exist when the flatten
starts; afterwards the venue (the broker) must hold no shares and no open order, the journal must
agree, and the state must be HALTED with the flatten's reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.kit import System, eventually

FAST = {
    "STRATEGY_SCOPE": "pulse",
    "QTS_STRATEGY__PULSE_EVERY": "3",
    "QTS_STRATEGY__PULSE_QTY": "7",
    "QTS_OBSERVER__RATE_HZ": "600",
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sys_ = System(tmp_path_factory.mktemp("qts-flatten"), **FAST)
    sys_.start()
    yield sys_
    sys_.stop()


def holdings(system: System) -> dict[str, int]:
    return {s: q for s, q in system.call("venue", "balance")["holdings"].items() if q}


def positions_to_close(system: System) -> dict[str, int]:
    """Holdings frozen in REDUCING (pulse's own sells are not reduce-only, so execution refuses
    them): otherwise pulse may sell them itself before the flatten starts, leaving the flatten
    nothing to do."""
    for _ in range(5):
        eventually(lambda: len(holdings(system)) >= 2, timeout=20, message="positions")
        system.ctl("reduce", "--reason", "freeze positions for the flatten test")
        eventually(
            lambda: system.call("venue", "balance")["open_orders"] == 0,
            timeout=10,
            message="working orders done",
        )
        held = holdings(system)
        if held:
            return held
        system.ctl("resume", "--yes", "--reason", "try again")
    raise AssertionError("pulse never held shares when REDUCING began")


def test_flatten_closes_every_position_then_halts(system: System) -> None:
    held = positions_to_close(system)
    proc = system.ctl("halt", "--flatten", "--reason", "flatten test", timeout=120)
    assert "flatten complete" in proc.stdout, proc.stdout
    status = system.call("supervisor", "status")
    assert status["state"] == "HALTED"
    assert status["reason"] == "flatten complete: flatten test"
    assert holdings(system) == {}
    assert system.call("venue", "balance")["open_orders"] == 0
    fills = system.call("execution", "fills")["fills"]
    net: Counter[tuple[str, str]] = Counter()
    for f in fills:
        net[(f["strategy"], f["symbol"])] += f["qty"] if f["side"] == "BUY" else -f["qty"]
    assert not +net and not -net, net  # flat per strategy too: the books close per strategy
    flatten_orders = [
        o
        for o in system.call("execution", "orders", {"limit": 100_000})["orders"]
        if o["intent_id"].startswith("flatten:")
    ]
    assert {o["symbol"] for o in flatten_orders} == set(held)
    assert all(o["side"] == "SELL" for o in flatten_orders)  # long only: nothing bought back


def test_strategies_cannot_trade_while_halted_after_the_flatten(system: System) -> None:
    before = len(system.call("venue", "orders")["orders"])
    seq = system.call("observer", "stats")["seq"]
    eventually(
        lambda: system.call("observer", "stats")["seq"] > seq + 300,
        timeout=10,
        message="market data flowing",
    )
    assert len(system.call("venue", "orders")["orders"]) == before
    assert holdings(system) == {}


def test_flatten_of_a_flat_account_halts_at_once(system: System) -> None:
    proc = system.ctl("halt", "--flatten", "--reason", "again", "--json", timeout=60)
    assert '"state": "HALTED"' in proc.stdout
    assert system.call("supervisor", "status")["reason"] == "flatten complete: again"
