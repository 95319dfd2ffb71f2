"""Test kit: polling helpers and a whole QTS system under a real supervisord in a temp dir.

The system uses the repository's own supervisord.conf, rewritten only so that supervisord's
files and the services' var dir live in the test's temporary directory and the programs run with
this interpreter. Everything else (programs, priorities, signals) is the shipped configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from protocol.endpoints import endpoint
from services.runtime import client

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def eventually(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, message: str = ""
) -> T:
    """Poll until condition() returns a truthy value, and return it; fail after timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may query a service that is not up yet
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"condition not met within {timeout}s: {message}{detail}")
        time.sleep(interval)


def qts_ctl_bin() -> str:
    return str(Path(sys.executable).parent / "qts-ctl")


class System:
    """One QTS deployment in `root`: start() runs `qts-ctl up`, stop() runs `qts-ctl down`."""

    def __init__(self, root: Path, **config: Any) -> None:
        self.root = root
        self.var = root / "var"
        self.conf = root / "supervisord.conf"
        root.mkdir(parents=True, exist_ok=True)
        text = (REPO / "supervisord.conf").read_text()
        text = text.replace("%(here)s/var", str(self.var))
        text = text.replace("%(here)s/.venv/bin/python", sys.executable)
        text = text.replace("%(here)s", str(REPO))
        self.conf.write_text(text)
        self.env = {
            **os.environ,
            "QTS_RUNTIME__VAR_DIR": str(self.var),
            "QTS_SUPERVISORD_CONF": str(self.conf),
            "LOG_LEVEL": "INFO",
            # any free port: several systems may run at once (tests that need it pass a port)
            "QTS_METRICS__PORT": "0",
        }
        for key, value in config.items():
            self.env[key] = value if isinstance(value, str) else json.dumps(value)
        self.started = False

    # -------------------------------------------------------------------------------- CLI
    def ctl(
        self, *args: str, timeout: float = 60.0, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [qts_ctl_bin(), *args],
            env=self.env,
            cwd=REPO,
            text=True,
            capture_output=True,
            timeout=timeout,
            input=input,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"qts-ctl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n{self.logs_tail()}"
            )
        return proc

    def ctl_json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ctl(*args, "--json", **kw).stdout)

    # -------------------------------------------------------------------------------- direct
    def address(self, name: str) -> str:
        return endpoint(self.var / "run", name)

    def call(
        self, service: str, command: str, args: dict[str, Any] | None = None, timeout: float = 2.0
    ) -> Any:
        return client.call(client.ctl_address(self.var / "run", service), command, args, timeout)

    def logs_tail(self, lines: int = 15) -> str:
        out = []
        for log in sorted((self.var / "log").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    # -------------------------------------------------------------------------------- lifecycle
    def start(self, *extra: str) -> subprocess.CompletedProcess[str]:
        proc = self.ctl("up", *extra, timeout=90)
        self.started = True
        return proc

    def stop(self) -> None:
        if self.started:
            self.ctl("down", timeout=60, check=False)
            self.started = False
