"""Deterministic identifiers: the same cause always yields the same id, so a replayed message is
recognised instead of acted on twice."""

from __future__ import annotations

import hashlib


def intent_id(strategy: str, stream: int, seq: int, n: int = 0) -> str:
    """The id of the n-th intent a strategy derives from market event (stream, seq)."""
    return f"{strategy}:{stream}:{seq}:{n}"


def client_order_id(intent: str) -> str:
    """Execution's key for the order made from an intent: a resent intent maps to the same id."""
    return "Q" + hashlib.blake2b(intent.encode(), digest_size=9).hexdigest()


def fill_id(broker_order_no: str, fill_no: int | str) -> str:
    """One fill of one broker order; brokers number fills per order (or per day)."""
    return f"{broker_order_no}-{fill_no}"
