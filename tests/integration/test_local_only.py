"""`qts-ctl up --local-only --max-iterations N`: run N market events, drain, summarise, exit 0."""

from __future__ import annotations

from typing import Any

from tests.kit import System


def test_local_only_max_iterations_exits_zero_with_a_summary(make_system: Any) -> None:
    system: System = make_system(
        STRATEGY_SCOPE="pulse",
        QTS_STRATEGY__PULSE_EVERY="5",
        QTS_OBSERVER__RATE_HZ="1000",
        BROKER_TYPE="kis",
    )
    proc = system.ctl("up", "--local-only", "--max-iterations", "500", timeout=120)
    system.started = False  # it shut itself down
    out = proc.stdout.lower()
    assert "500" in out  # market events processed
    assert "fill" in out
    assert not (system.var / "run" / "supervisord.pid").exists() or not _running(system)


def _running(system: System) -> bool:
    pid_file = system.var / "run" / "supervisord.pid"
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    try:
        import os

        os.kill(pid, 0)
    except OSError:
        return False
    return True
