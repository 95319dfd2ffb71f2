"""Issue 4's fault test, one round: every service SIGKILLed once mid-trading (chaos.py)."""

from __future__ import annotations

from pathlib import Path

from tests.fault.chaos import SERVICES, run


def test_sigkill_each_service_loses_and_doubles_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, rounds=1, seed=20261124)
    assert sorted(k["service"] for k in result["kills"]) == sorted(SERVICES)
    assert result["venue_orders"] > 0
    assert result["fills"] > 0
