from __future__ import annotations

import itertools

import pytest

from protocol.enums import TradingState
from services.supervisor.states import TRIGGERS, InvalidTransition, next_state

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED

EXPECTED = {
    (A, "halt"): H,
    (R, "halt"): H,
    (H, "halt"): H,
    (A, "reduce"): R,
    (R, "reduce"): R,
    (A, "resume"): A,
    (R, "resume"): A,
    (H, "resume"): A,
    (A, "flatten"): R,
    (R, "flatten"): R,
    (H, "flatten"): R,
}


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(TradingState, TRIGGERS)))
def test_every_state_trigger_pair_matches_the_table(state: TradingState, trigger: str) -> None:
    if (state, trigger) in EXPECTED:
        assert next_state(state, trigger) is EXPECTED[(state, trigger)]
    else:
        with pytest.raises(InvalidTransition):
            next_state(state, trigger)


def test_reduce_when_halted_then_refused_naming_resume() -> None:
    with pytest.raises(InvalidTransition, match="only resume or flatten leaves HALTED"):
        next_state(H, "reduce")


def test_unknown_trigger_then_refused() -> None:
    with pytest.raises(InvalidTransition):
        next_state(A, "liquidate")
