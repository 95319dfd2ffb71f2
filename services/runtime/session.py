"""The market's session phase as a function of the exchange clock (settings.session).

The observer publishes it (PhaseChanged for symbol "") from this clock; execution asks it before
sending to a real broker, as a second gate independent of the market-data stream. With
clock "always_open" the market is CONTINUOUS at every instant (the synthetic demo market).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from protocol.enums import MarketPhase
from services.runtime.calendar import KST, KrxCalendar
from services.runtime.settings import SessionSettings


class Phase(NamedTuple):
    phase: MarketPhase
    closes_ns: int  # the regular session's end today, epoch ns; 0 if none (or always open)


ALWAYS_OPEN = Phase(MarketPhase.CONTINUOUS, 0)


class SessionClock:
    def __init__(self, cfg: SessionSettings, calendar: KrxCalendar | None = None) -> None:
        self.cfg = cfg
        self.always_open = cfg.clock == "always_open"
        self._calendar = calendar
        self._cache: tuple[int, Phase] | None = None  # (second, phase): one lookup a second

    @property
    def calendar(self) -> KrxCalendar:
        if self._calendar is None:
            # the cache makes this milliseconds; the first build on a machine takes seconds
            year = dt.datetime.now(KST).year
            self._calendar = KrxCalendar.load(year - 1, year + 1, self.cfg.extra_closures)
        return self._calendar

    def at(self, when_ns: int) -> Phase:
        """The market-wide phase at `when_ns` (epoch ns, exchange clock)."""
        if self.always_open:
            return ALWAYS_OPEN
        second = when_ns // 1_000_000_000
        if self._cache is not None and self._cache[0] == second:
            return self._cache[1]
        when = dt.datetime.fromtimestamp(when_ns / 1e9, KST)
        bounds = self.calendar.session_bounds(when.date())
        closes_ns = int(bounds[1].timestamp()) * 1_000_000_000 if bounds else 0
        phase = Phase(self.calendar.phase_at(when), closes_ns)
        self._cache = (second, phase)
        return phase

    def open_for_orders(self, when_ns: int) -> bool:
        """Whether the exchange takes orders at all (any phase but CLOSED/HALTED)."""
        return self.at(when_ns).phase not in (MarketPhase.CLOSED, MarketPhase.HALTED)
