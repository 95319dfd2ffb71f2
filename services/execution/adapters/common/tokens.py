"""An access token cached on disk, shared by every process using the same app key.

Brokers limit how often a token may be issued (KIS: once a minute, EGW00133, and every
issuance sends the account holder a KakaoTalk alert) and a token lives for hours (KIS: a day).
So the token is issued once and kept in a file next to its expiry; every process that uses
the key reads it from there. A file lock (fcntl.flock) makes "read, maybe issue, write" one
step across processes, and the time of the last issuance attempt is kept in the same file so
the limit holds for all of them, across restarts too. The file holds a credential: mode 0600.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.execution.adapters.common.errors import TokenThrottled

# (token, expiry as epoch seconds)
IssueFn = Callable[[], tuple[str, float]]


class TokenCache:
    def __init__(
        self,
        path: Path,
        issue: IssueFn,
        min_interval_s: float = 60.0,
        renew_before_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.issue = issue
        self.min_interval_s = min_interval_s
        self.renew_before_s = renew_before_s
        self.clock = clock
        self.lock = threading.Lock()
        self.token = ""
        self.expires_at = 0.0
        self.issued = 0  # issuances by this process (for tests and counters)

    def get(self) -> str:
        """A token good for at least renew_before_s more, or, when renewal is not allowed yet,
        one that has not expired. Raises TokenThrottled if there is none and the issuance
        window is closed, or whatever issue() raises."""
        now = self.clock()
        if self.token and self.expires_at - now > self.renew_before_s:
            return self.token
        with self.lock, self._file_lock():
            state = self._read()
            now = self.clock()
            token, expires_at = str(state.get("token", "")), float(state.get("expires_at", 0.0))
            if token and expires_at - now > self.renew_before_s:
                self.token, self.expires_at = token, expires_at
                return token
            last = float(state.get("last_attempt", 0.0))
            if now - last < self.min_interval_s:
                if token and expires_at > now:
                    # renewal due but not allowed yet: the current one still works
                    self.token, self.expires_at = token, expires_at
                    return token
                wait = self.min_interval_s - (now - last)
                raise TokenThrottled(
                    "LOCAL_TOKEN_LIMIT",
                    f"token issued {now - last:.0f}s ago; next issuance allowed in {wait:.0f}s",
                )
            state["last_attempt"] = now  # counts even if the issuance fails or we crash
            self._write(state)
            try:
                token, expires_at = self.issue()
            except TokenThrottled:
                raise  # the broker says too soon: last_attempt stays, the window restarts
            state.update(token=token, expires_at=expires_at, issued_at=now)
            self._write(state)
            self.issued += 1
            self.token, self.expires_at = token, expires_at
            return token

    def invalidate(self, token: str) -> None:
        """The broker says `token` expired or is unknown: forget it (here and in the file)
        unless another process already replaced it."""
        with self.lock, self._file_lock():
            if self.token == token:
                self.token, self.expires_at = "", 0.0
            state = self._read()
            if state.get("token") == token:
                state["token"], state["expires_at"] = "", 0.0
                self._write(state)

    def seconds_left(self) -> float:
        return max(0.0, self.expires_at - self.clock()) if self.token else 0.0

    # ------------------------------------------------------------------ file
    def _file_lock(self) -> _Flock:
        return _Flock(self.path.with_name(self.path.name + ".lock"))

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}  # missing or torn: issue a new one (within the limit)
        return data if isinstance(data, dict) else {}

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, self.path)


class _Flock:
    """An exclusive flock on a side file for the duration of a with block. Each use opens
    its own descriptor, so it excludes other threads of this process as well as others."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Flock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def flock(path: Path) -> _Flock:
    return _Flock(path)
