"""The order state machine as an explicit table. An illegal transition is a broken invariant:
crash-only, the process exits non-zero and its start-up reconciliation repairs the picture."""

from __future__ import annotations

from typing import Final

from protocol.enums import OrderStatus as S

TRANSITIONS: Final[dict[S, frozenset[S]]] = {
    S.PENDING: frozenset({S.SENT, S.DENIED, S.REJECTED}),
    # SENT means "handed to the broker, outcome unknown until it answers"
    S.SENT: frozenset(
        {S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}
    ),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.DENIED: frozenset(),
    S.EXPIRED: frozenset(),
}


class IllegalTransition(Exception):
    pass


def check(current: S, new: S) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"order status {current.value} -> {new.value} is not allowed")


def after_fill(leaves: int) -> S:
    return S.FILLED if leaves <= 0 else S.PARTIALLY_FILLED
