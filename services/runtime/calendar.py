"""The KRX trading calendar: exchange-calendars' XKRX plus the corrections in ../shared/krx.md.

exchange-calendars 4.13.2 gets most of KRX right (holidays through 2050, the 10:00 open on the
first trading day) but misses some 2026/2027 closures and the CSAT (수능) one-hour shift after
2020 (krx.md section 8). We apply a small project-owned override table on top, and let operators
add ad-hoc closures from config (they are announced only weeks ahead).

Building XKRX takes ~6 s (lunar holidays), too slow for a service restart during market hours, so
the corrected session table is cached as JSON (one file per exchange-calendars version and
override set) and services read the cache in milliseconds.

Intraday phases (krx.md 1.1) are modelled here too, since the calendar has none: the opening
call auction runs from 30 minutes before the open, the closing auction the last 10 minutes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

from protocol.enums import MarketPhase

KST = ZoneInfo("Asia/Seoul")

# krx.md section 8: closures XKRX 4.13.2 lacks (* in krx.md: verify against KRX notices)
EXTRA_CLOSURES = (
    dt.date(2026, 6, 3),  # local elections
    dt.date(2026, 7, 17),  # Constitution Day, a holiday again from 2026
    dt.date(2027, 5, 3),  # Labor Day substitute (projected)
    dt.date(2027, 7, 19),  # Constitution Day substitute (projected)
)
# CSAT days: every session one hour later, regular session 10:00-16:30
CSAT_DAYS = (
    dt.date(2021, 11, 18),
    dt.date(2022, 11, 17),
    dt.date(2023, 11, 16),
    dt.date(2024, 11, 14),
    dt.date(2025, 11, 13),
    dt.date(2026, 11, 19),  # assumed to follow the yearly pattern (no stored KRX notice)
)
OPENING_AUCTION = dt.timedelta(minutes=30)
CLOSING_AUCTION = dt.timedelta(minutes=10)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qts"


class KrxCalendar:
    """Sessions as (open, close) KST datetimes by date."""

    def __init__(self, sessions: dict[dt.date, tuple[dt.datetime, dt.datetime]]) -> None:
        self._sessions = sessions
        self._dates = sorted(sessions)

    # ------------------------------------------------------------------------- construction
    @classmethod
    def load(
        cls,
        start_year: int,
        end_year: int,
        extra_closures: Iterable[dt.date] = (),
        cache_dir: Path | None = None,
    ) -> KrxCalendar:
        """The corrected calendar for [start_year, end_year], from the cache when possible."""
        extra = tuple(sorted(set(extra_closures)))
        cache_dir = cache_dir or _default_cache_dir()
        key = cls._cache_key(start_year, end_year, extra)
        path = cache_dir / f"krx-calendar-{key}.json"
        try:
            return cls._from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError):
            pass
        cal = cls.build(start_year, end_year, extra)
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".krx-calendar-")
            with os.fdopen(fd, "w") as fh:
                json.dump(cal._to_json(), fh)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache only costs the next start the build time
        return cal

    @classmethod
    def build(
        cls, start_year: int, end_year: int, extra_closures: Iterable[dt.date] = ()
    ) -> KrxCalendar:
        with warnings.catch_warnings():
            # exchange-calendars 4.13.2 trips pandas 3 deprecation warnings; not ours to fix
            warnings.simplefilter("ignore")
            return cls._build(start_year, end_year, extra_closures)

    @classmethod
    def _build(
        cls, start_year: int, end_year: int, extra_closures: Iterable[dt.date]
    ) -> KrxCalendar:
        import exchange_calendars as xc  # slow import: only when the cache misses

        xkrx = xc.get_calendar("XKRX", start=f"{start_year}-01-01", end=f"{end_year}-12-31")
        closures = set(EXTRA_CLOSURES) | set(extra_closures)
        sessions: dict[dt.date, tuple[dt.datetime, dt.datetime]] = {}
        for label in xkrx.sessions:
            day = label.date()
            if day in closures:
                continue
            # read schedule, not late_opens: XKRX's special opens live only there (krx.md 8.4)
            opens = xkrx.session_open(label).to_pydatetime().astimezone(KST)
            closes = xkrx.session_close(label).to_pydatetime().astimezone(KST)
            if day in CSAT_DAYS:
                opens = dt.datetime.combine(day, dt.time(10, 0), KST)
                closes = dt.datetime.combine(day, dt.time(16, 30), KST)
            sessions[day] = (opens, closes)
        return cls(sessions)

    @staticmethod
    def _cache_key(start_year: int, end_year: int, extra: tuple[dt.date, ...]) -> str:
        try:
            from importlib.metadata import version

            xc_version = version("exchange-calendars")
        except Exception:
            xc_version = "unknown"
        text = repr((xc_version, start_year, end_year, EXTRA_CLOSURES, CSAT_DAYS, extra))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def _to_json(self) -> dict[str, list[str]]:
        return {
            d.isoformat(): [o.isoformat(), c.isoformat()] for d, (o, c) in self._sessions.items()
        }

    @classmethod
    def _from_json(cls, data: dict[str, list[str]]) -> KrxCalendar:
        return cls(
            {
                dt.date.fromisoformat(d): (
                    dt.datetime.fromisoformat(o),
                    dt.datetime.fromisoformat(c),
                )
                for d, (o, c) in data.items()
            }
        )

    # ------------------------------------------------------------------------- queries
    def is_session(self, day: dt.date) -> bool:
        return day in self._sessions

    def session_bounds(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        return self._sessions.get(day)

    def sessions_in_year(self, year: int) -> list[dt.date]:
        return [d for d in self._dates if d.year == year]

    def next_session(self, day: dt.date) -> dt.date | None:
        return next((d for d in self._dates if d > day), None)

    def add_sessions(self, day: dt.date, n: int) -> dt.date:
        """The n-th session after `day` (settlement: T+2 is add_sessions(trade_date, 2))."""
        for _ in range(n):
            nxt = self.next_session(day)
            if nxt is None:
                raise ValueError(f"calendar ends before {n} sessions after {day}")
            day = nxt
        return day

    def phase_at(self, when: dt.datetime) -> MarketPhase:
        """The regular-market phase at an aware datetime (VI and halts are per symbol)."""
        local = when.astimezone(KST)
        bounds = self._sessions.get(local.date())
        if bounds is None:
            return MarketPhase.CLOSED
        opens, closes = bounds
        if opens - OPENING_AUCTION <= local < opens:
            return MarketPhase.PRE_OPEN
        if opens <= local < closes - CLOSING_AUCTION:
            return MarketPhase.CONTINUOUS
        if closes - CLOSING_AUCTION <= local < closes:
            return MarketPhase.CLOSING_AUCTION
        return MarketPhase.CLOSED
