"""A requests-per-second limit shared by every process using the same broker key.

Brokers count requests per app key (KIS: 18/s live, 1/s paper, "계좌 단위"), whoever sends
them: execution, a dashboard and a query script on one key share one budget. The window (the
send times of the last second) lives in a small file under an flock, so all processes on the
host see the same one. When the broker still says "too many" (KIS EGW00201), pause() makes
every process wait, not only the one that was refused. Wall-clock time (time.time) is shared
by all processes on the host.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.execution.adapters.common.tokens import flock


class RateLimitTimeout(Exception):
    """No slot before the caller's deadline."""


class RateLimiter:
    def __init__(
        self,
        path: Path,
        rate_per_s: int,
        window_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        self.path = path
        self.rate = rate_per_s
        self.window_s = window_s
        self.clock = clock
        self.sleep = sleep
        self.waited_s = 0.0  # total time spent waiting for a slot (counters)

    def acquire(self, deadline: float | None = None) -> None:
        """Take a slot, waiting as long as needed. deadline: clock() value after which to give
        up with RateLimitTimeout instead of waiting."""
        while True:
            wait = self._try()
            if wait <= 0:
                return
            now = self.clock()
            if deadline is not None and now + wait > deadline:
                raise RateLimitTimeout(f"no request slot within {max(0.0, deadline - now):.2f}s")
            self.waited_s += wait
            self.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Everyone sharing the key waits `seconds` from now (the broker said too many)."""
        with flock(self._lock_path()):
            state = self._read()
            state["blocked_until"] = max(
                float(state.get("blocked_until", 0.0)), self.clock() + seconds
            )
            self._write(state)

    def _try(self) -> float:
        """0 if a slot was taken, else seconds to wait before trying again."""
        with flock(self._lock_path()):
            state = self._read()
            now = self.clock()
            blocked = float(state.get("blocked_until", 0.0))
            if blocked > now:
                return blocked - now
            stamps = [t for t in state.get("stamps", []) if now - t < self.window_s]
            if len(stamps) >= self.rate:
                return max(0.001, stamps[-self.rate] + self.window_s - now)
            stamps.append(now)
            state["stamps"] = stamps
            self._write(state)
            return 0.0

    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.path)
