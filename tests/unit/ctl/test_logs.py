"""qts-ctl logs: which file, its tail, and following it across supervisord's rotation."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from services.ctl.logs import LogsError, follow, log_path, tail
from tests.kit import REPO, eventually

CONF = """[supervisord]
logfile=%(here)s/var/log/supervisord.log

[program:risk]
command=true
stdout_logfile=%(here)s/var/log/risk.log
"""


def test_log_path_reads_the_supervisord_config(tmp_path: Path) -> None:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(CONF)
    assert log_path(conf, "risk") == tmp_path / "var/log/risk.log"
    assert log_path(conf, "supervisord") == tmp_path / "var/log/supervisord.log"
    with pytest.raises(LogsError, match=r"no \[program:strategy\] stdout_logfile"):
        log_path(conf, "strategy")
    with pytest.raises(LogsError, match="no supervisord config"):
        log_path(tmp_path / "missing.conf", "risk")


def test_the_shipped_config_names_a_log_for_every_service() -> None:
    for service in ("supervisor", "observer", "execution", "risk", "venue"):
        assert log_path(REPO / "supervisord.conf", service).name == f"{service}.log"


def test_tail_reads_the_last_lines_of_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("".join(f"line {i}\n" for i in range(50_000)))
    assert tail(path, 3) == ["line 49997", "line 49998", "line 49999"]
    assert tail(path, 0) == []
    short = tmp_path / "short.log"
    short.write_text("a\nb\n")
    assert tail(short, 10) == ["a", "b"]


def test_follow_survives_rotation(tmp_path: Path) -> None:
    path = tmp_path / "risk.log"
    path.write_text("old 1\nold 2\n")
    got: list[str] = []
    done = threading.Event()

    def reader() -> None:
        for line in follow(path, 1, interval=0.01, stop=done.is_set):
            got.append(line)

    t = threading.Thread(target=reader)
    t.start()
    try:
        eventually(lambda: got == ["old 2"], timeout=5)
        with path.open("a") as f:
            f.write("new 1\n")
        eventually(lambda: got[-1:] == ["new 1"], timeout=5)
        # supervisord's rotation: rename, then a new file at the same path
        with path.open("a") as f:
            f.write("last of the old file\n")
        os.rename(path, tmp_path / "risk.log.1")
        path.write_text("first of the new file\n")
        eventually(lambda: got[-1:] == ["first of the new file"], timeout=5)
        assert "last of the old file" in got
        # truncation in place (copytruncate) is followed too
        path.write_text("after truncate\n")
        eventually(lambda: got[-1:] == ["after truncate"], timeout=5)
    finally:
        done.set()
        t.join(5)
    assert got.count("new 1") == 1


def test_qts_ctl_logs_prints_the_tail(tmp_path: Path) -> None:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(CONF)
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/risk.log").write_text("one\ntwo\nthree\n")
    ctl = str(Path(sys.executable).parent / "qts-ctl")
    run = lambda *a: subprocess.run(  # noqa: E731
        [ctl, "--conf", str(conf), "logs", *a], capture_output=True, text=True, timeout=30
    )
    proc = run("risk", "-n", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "two\nthree\n"
    proc = run("strategy")
    assert proc.returncode == 1
    assert "no [program:strategy] stdout_logfile" in proc.stderr
    proc = run("nonsense")
    assert proc.returncode == 2  # click: not a service
    (tmp_path / "var/log/risk.log").unlink()
    proc = run("risk")
    assert proc.returncode == 1
    assert "no log yet" in proc.stderr
    # -f prints the tail at once, then follows (stopped here by the test)
    follower = subprocess.Popen(
        [ctl, "--conf", str(conf), "logs", "risk", "-f"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.5)
        (tmp_path / "var/log/risk.log").write_text("appeared\n")
        assert follower.stdout is not None
        ready, _, _ = select.select([follower.stdout], [], [], 10)
        assert ready, "qts-ctl logs -f printed nothing within 10 s"
        assert follower.stdout.readline() == "appeared\n"
    finally:
        follower.terminate()
        follower.wait(10)
        assert follower.stdout is not None
        follower.stdout.close()
