"""Starting and stopping supervisord, and its XML-RPC (supervisorctl's own transport)."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from services.runtime.settings import REPO_ROOT


class SupervisordError(Exception):
    pass


def conf_path(explicit: str | None = None) -> Path:
    return Path(
        explicit or os.environ.get("QTS_SUPERVISORD_CONF") or REPO_ROOT / "supervisord.conf"
    ).resolve()


class Supervisord:
    def __init__(self, conf: Path) -> None:
        if not conf.exists():
            raise SupervisordError(f"no supervisord config at {conf}")
        self.conf = conf
        parser = configparser.RawConfigParser()
        parser.read(conf)
        here = str(conf.parent)

        def get(section: str, key: str) -> str:
            try:
                return parser.get(section, key).replace("%(here)s", here)
            except (configparser.NoSectionError, configparser.NoOptionError) as exc:
                raise SupervisordError(f"{conf}: [{section}] {key} is missing") from exc

        self.socket = get("unix_http_server", "file")
        self.pidfile = get("supervisord", "pidfile")
        self.logfile = get("supervisord", "logfile")
        self.dirs = {Path(self.socket).parent, Path(self.pidfile).parent, Path(self.logfile).parent}
        for section in parser.sections():
            if section.startswith("program:") and parser.has_option(section, "stdout_logfile"):
                self.dirs.add(Path(get(section, "stdout_logfile")).parent)

    def call(self, method: str, *args: Any) -> Any:
        """One XML-RPC call (e.g. "supervisor.getState"); the connection is closed after it."""
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        try:
            proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
            return getattr(proxy, method)(*args)
        finally:
            transport.close()

    def pid(self) -> int | None:
        try:
            pid = int(Path(self.pidfile).read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        if self.pid() is None:
            return False
        try:
            self.call("supervisor.getState")
            return True
        except (OSError, xmlrpc.client.Fault):
            return False

    def start(self, env: dict[str, str]) -> None:
        if self.running():
            raise SupervisordError(
                f"supervisord already runs (pid {self.pid()}, "
                f"socket {self.socket}); `qts-ctl down` first"
            )
        for d in self.dirs:
            d.mkdir(parents=True, exist_ok=True)
        binary = Path(sys.executable).parent / "supervisord"
        proc = subprocess.run(
            [str(binary), "-c", str(self.conf)], env=env, capture_output=True, text=True, timeout=30
        )
        if proc.returncode != 0:
            raise SupervisordError(f"supervisord failed to start: {proc.stderr or proc.stdout}")
        deadline = time.monotonic() + 10
        while not self.running():
            if time.monotonic() > deadline:
                raise SupervisordError(f"supervisord did not come up; see {self.logfile}")
            time.sleep(0.05)

    def stop(self, timeout: float = 60.0) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            self.call("supervisor.shutdown")
        except (OSError, xmlrpc.client.Fault):
            os.kill(pid, 15)
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() > deadline:
                raise SupervisordError(f"supervisord (pid {pid}) did not exit in {timeout:g}s")
            time.sleep(0.05)
        return True

    def processes(self) -> dict[str, dict[str, Any]]:
        try:
            return {p["name"]: p for p in self.call("supervisor.getAllProcessInfo")}
        except (OSError, xmlrpc.client.Fault):
            return {}

    def restart(self, service: str) -> None:
        name = f"qts:{service}"
        try:
            self.call("supervisor.stopProcess", name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise SupervisordError(f"cannot stop {name}: {fault.faultString}") from None
        try:
            self.call("supervisor.startProcess", name, True)
        except xmlrpc.client.Fault as fault:
            raise SupervisordError(f"cannot start {name}: {fault.faultString}") from None
