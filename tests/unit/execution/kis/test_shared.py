"""The pieces every HTTP broker shares: token cache, rate limiter, back-off."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.execution.adapters.common.errors import TokenThrottled
from services.execution.adapters.common.ratelimit import RateLimiter, RateLimitTimeout
from services.execution.adapters.common.tokens import TokenCache
from services.execution.adapters.common.wsclient import Backoff

REPO = Path(__file__).resolve().parents[4]


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class Issuer:
    def __init__(self, clock: Clock, ttl: float = 86_400.0) -> None:
        self.clock, self.ttl, self.count = clock, ttl, 0

    def __call__(self) -> tuple[str, float]:
        self.count += 1
        return f"token-{self.count}", self.clock() + self.ttl


def test_token_is_issued_once_and_shared_through_the_file(tmp_path: Path) -> None:
    clock = Clock()
    issuer = Issuer(clock)
    a = TokenCache(tmp_path / "t.json", issuer, 60, 3600, clock)
    b = TokenCache(tmp_path / "t.json", issuer, 60, 3600, clock)  # another process
    assert a.get() == "token-1"
    assert b.get() == "token-1"
    clock.t += 3600
    assert a.get() == b.get() == "token-1"
    assert issuer.count == 1
    assert (tmp_path / "t.json").stat().st_mode & 0o777 == 0o600  # it holds a credential


def test_token_renewed_before_it_lapses(tmp_path: Path) -> None:
    clock = Clock()
    issuer = Issuer(clock, ttl=7200)
    cache = TokenCache(tmp_path / "t.json", issuer, 60, 3600, clock)
    assert cache.get() == "token-1"
    clock.t += 3601  # less than renew_before_s left
    assert cache.get() == "token-2"
    state = json.loads((tmp_path / "t.json").read_text())
    assert state["token"] == "token-2" and state["expires_at"] == clock.t + 7200


def test_at_most_one_issuance_a_minute(tmp_path: Path) -> None:
    clock = Clock()
    issuer = Issuer(clock, ttl=30)  # shorter than the renewal margin: always "due"
    cache = TokenCache(tmp_path / "t.json", issuer, 60, 3600, clock)
    assert cache.get() == "token-1"
    clock.t += 10
    assert cache.get() == "token-1"  # renewal due, not allowed yet, still valid: keep it
    clock.t += 25  # expired, and still within the minute
    with pytest.raises(TokenThrottled, match="next issuance"):
        cache.get()
    clock.t += 30
    assert cache.get() == "token-2"
    assert issuer.count == 2


def test_failed_issuance_counts_against_the_limit(tmp_path: Path) -> None:
    clock = Clock()

    def refuse() -> tuple[str, float]:
        raise TokenThrottled("EGW00133", "1분당 1회")

    cache = TokenCache(tmp_path / "t.json", refuse, 60, 3600, clock)
    with pytest.raises(TokenThrottled, match="EGW00133"):
        cache.get()
    clock.t += 5
    with pytest.raises(TokenThrottled, match="next issuance allowed"):
        cache.get()  # refused locally: no second call to KIS within the minute


def test_invalidate_forgets_only_that_token(tmp_path: Path) -> None:
    clock = Clock()
    issuer = Issuer(clock)
    cache = TokenCache(tmp_path / "t.json", issuer, 0, 3600, clock)
    other = TokenCache(tmp_path / "t.json", issuer, 0, 3600, clock)
    assert cache.get() == "token-1"
    cache.invalidate("token-1")
    assert other.get() == "token-2"  # another process re-issued meanwhile
    cache.invalidate("token-1")  # stale: must not drop token-2
    assert cache.get() == "token-2"
    assert issuer.count == 2


def test_torn_token_file_is_reissued(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text('{"token": "tok')
    clock = Clock()
    cache = TokenCache(tmp_path / "t.json", Issuer(clock), 60, 3600, clock)
    assert cache.get() == "token-1"


def test_processes_share_one_issuance(tmp_path: Path) -> None:
    """Four real processes ask at once: one issues, the others read its token."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from services.execution.adapters.common.tokens import TokenCache
        log = Path({str(tmp_path / "issued.log")!r})
        def issue():
            with open(log, "a") as fh:
                fh.write("x\\n")
            time.sleep(0.2)  # others arrive while this one issues
            return "shared-token", time.time() + 86400
        print(TokenCache(Path({str(tmp_path / "t.json")!r}), issue, 60, 3600).get())
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=30)[0].strip() for p in procs]
    assert outs == ["shared-token"] * 4
    assert (tmp_path / "issued.log").read_text() == "x\n"


# ------------------------------------------------------------------ rate limiter
def test_rate_limiter_window(tmp_path: Path) -> None:
    clock = Clock()
    lim = RateLimiter(tmp_path / "r.json", 2, clock=clock, sleep=clock.sleep)
    start = clock.t
    lim.acquire()
    lim.acquire()
    assert clock.t == start
    lim.acquire()  # third in the same second: waits for the window
    assert clock.t == pytest.approx(start + 1.0)


def test_rate_limiter_shared_by_instances_and_paused(tmp_path: Path) -> None:
    clock = Clock()
    a = RateLimiter(tmp_path / "r.json", 1, clock=clock, sleep=clock.sleep)
    b = RateLimiter(tmp_path / "r.json", 1, clock=clock, sleep=clock.sleep)
    a.acquire()
    with pytest.raises(RateLimitTimeout):
        b.acquire(deadline=clock.t + 0.5)  # a took this second's slot
    clock.t += 1.0
    a.pause(5.0)  # the broker said EGW00201: b waits too
    start = clock.t
    b.acquire()
    assert clock.t == pytest.approx(start + 5.0)
    assert b.waited_s == pytest.approx(5.0)


def test_rate_limiter_rejects_a_bad_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(tmp_path / "r.json", 0)


# ------------------------------------------------------------------ back-off
def test_backoff_doubles_to_the_cap_and_resets() -> None:
    import random

    b = Backoff(0.5, 4.0, random.Random(1))
    delays = [b.next() for _ in range(6)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(0.8 * x <= d <= 1.2 * x for d, x in zip(delays, bases, strict=True))
    b.reset()
    assert b.next() <= 0.6
    with pytest.raises(ValueError):
        Backoff(0, 1)
