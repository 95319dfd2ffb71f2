"""Trading-state transitions as an explicit table: (state, trigger) -> state.

Only `resume` and `flatten` leave HALTED; `halt` is accepted from anywhere (also HALTED: a
repeated halt bumps the epoch, so every service re-acknowledges and execution re-sweeps open
orders). `flatten` (qts-ctl halt --flatten) enters REDUCING with the flatten flag from any state:
execution closes every position with its own reduce-only orders and the supervisor halts once
flat, so a flatten after a guardrail's halt is the operator's way to get out of the market.
Cancels are not transitions: they always pass, in every state.
"""

from __future__ import annotations

from typing import Final

from protocol.enums import TradingState

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED

TRIGGERS: Final = ("halt", "reduce", "resume", "flatten")

TRANSITIONS: Final[dict[tuple[TradingState, str], TradingState]] = {
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
    # (H, "reduce") is absent on purpose: only an explicit resume (or flatten) leaves HALTED
}


class InvalidTransition(Exception):
    pass


def next_state(state: TradingState, trigger: str) -> TradingState:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(
            f"cannot {trigger} while {state.value}"
            + (": only resume or flatten leaves HALTED" if state is H else "")
        ) from None
