"""Trading-state transitions as an explicit table: (state, trigger) -> state.

Only `resume` leaves HALTED; `halt` is accepted from anywhere (also HALTED: a repeated halt
bumps the epoch, so every service re-acknowledges and execution re-sweeps open orders).
Cancels are not transitions: they always pass, in every state.
"""

from __future__ import annotations

from typing import Final

from protocol.enums import TradingState

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED

TRIGGERS: Final = ("halt", "reduce", "resume")

TRANSITIONS: Final[dict[tuple[TradingState, str], TradingState]] = {
    (A, "halt"): H,
    (R, "halt"): H,
    (H, "halt"): H,
    (A, "reduce"): R,
    (R, "reduce"): R,
    (A, "resume"): A,
    (R, "resume"): A,
    (H, "resume"): A,
    # (H, "reduce") is absent on purpose: only an explicit resume leaves HALTED
}


class InvalidTransition(Exception):
    pass


def next_state(state: TradingState, trigger: str) -> TradingState:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(
            f"cannot {trigger} while {state.value}"
            + (": only resume leaves HALTED" if state is H else "")
        ) from None
