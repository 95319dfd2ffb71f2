"""`qts-ctl halt --flatten` with no supervisor: a clear error, and nothing changed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.kit import REPO, qts_ctl_bin


def test_flatten_without_a_supervisor_says_so_and_changes_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [qts_ctl_bin(), "halt", "--flatten", "--reason", "test"],
        env={**os.environ, "QTS_RUNTIME__VAR_DIR": str(tmp_path)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "UNAVAILABLE" in proc.stderr and "flatten needs the supervisor" in proc.stderr
    assert "without --flatten" in proc.stderr
    assert not (tmp_path / "state" / "trading_state.json").exists()
