from __future__ import annotations

import json
from pathlib import Path

from protocol.enums import TradingState
from services.runtime.statefile import PersistedState, StateStore


def test_first_start_without_file_then_initial_state_epoch_one(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "trading_state.json", TradingState.REDUCING)
    state, error = store.load()
    assert error is None
    assert (state.state, state.epoch) == (TradingState.REDUCING, 1)


def test_save_then_load_round_trips_and_leaves_no_tmp_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "trading_state.json"
    store = StateStore(path)
    saved = PersistedState(
        state=TradingState.HALTED, epoch=7, reason="drill", by="ops", changed_ns=123
    )
    store.save(saved)
    loaded, error = StateStore(path).load()
    assert error is None
    assert loaded == saved
    assert json.loads(path.read_text())["state"] == "HALTED"
    assert [p.name for p in path.parent.iterdir()] == ["trading_state.json"]


def test_save_over_existing_file_replaces_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "trading_state.json"
    store = StateStore(path)
    store.save(
        PersistedState(state=TradingState.ACTIVE, epoch=1, reason="r" * 5000, by="a", changed_ns=1)
    )
    store.save(PersistedState(state=TradingState.HALTED, epoch=2, reason="x", by="b", changed_ns=2))
    loaded, _ = store.load()
    assert (loaded.state, loaded.epoch, loaded.reason) == (TradingState.HALTED, 2, "x")


def test_corrupt_file_then_halted_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "trading_state.json"
    path.write_text('{"state": "ACTIVE", "epo')
    state, error = StateStore(path, TradingState.ACTIVE).load()
    assert error
    assert state.state is TradingState.HALTED
    assert state.reason.startswith("state file unreadable: ")


def test_file_with_unknown_state_then_halted(tmp_path: Path) -> None:
    path = tmp_path / "trading_state.json"
    path.write_text('{"state": "PARTY", "epoch": 3, "reason": "", "by": "", "changed_ns": 0}')
    state, error = StateStore(path).load()
    assert error
    assert state.state is TradingState.HALTED
