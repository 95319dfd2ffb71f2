"""The persisted trading state, written atomically and fsynced before anyone is told of it.

Shared by the supervisor (the owner) and qts-ctl, which writes HALTED here itself when the
supervisor does not answer (the supervisor honours it when it comes back)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import msgspec

from protocol.enums import TradingState


class PersistedState(msgspec.Struct, frozen=True, kw_only=True):
    state: TradingState
    epoch: int
    reason: str
    by: str
    changed_ns: int
    flatten: bool = False  # REDUCING for `halt --flatten` (protocol TradingStateUpdate.flatten)


def atomic_write(path: Path, data: bytes) -> None:
    """tmp file, fsync, rename over, fsync the directory: after a crash either the old or the
    new content is there, never a torn file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateStore:
    def __init__(self, path: Path, initial: TradingState = TradingState.ACTIVE) -> None:
        self.path = path
        self.initial = initial

    def load(self) -> tuple[PersistedState, str | None]:
        """The persisted state, and an error text if the file was unusable (then: HALTED)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return PersistedState(
                state=self.initial,
                epoch=1,
                reason="first start",
                by="supervisor",
                changed_ns=time.time_ns(),
            ), None
        except OSError as exc:
            return self._fail_safe(f"state file unreadable: {exc}"), str(exc)
        try:
            return msgspec.json.decode(raw, type=PersistedState), None
        except msgspec.DecodeError as exc:
            return self._fail_safe(f"state file unreadable: {exc}"), str(exc)

    def _fail_safe(self, reason: str) -> PersistedState:
        # refuse to guess: a corrupt file might have said HALTED; epoch from the clock so it
        # is newer than anything a service has seen
        return PersistedState(
            state=TradingState.HALTED,
            epoch=time.time_ns() // 1_000_000,
            reason=reason,
            by="supervisor",
            changed_ns=time.time_ns(),
        )

    def save(self, state: PersistedState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(msgspec.to_builtins(state), indent=1).encode())
