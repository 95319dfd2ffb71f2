"""The corrected KRX calendar against krx.md section 8 (one build, then cached)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from protocol.enums import MarketPhase
from services.runtime.calendar import KST, KrxCalendar


@pytest.fixture(scope="module")
def cal(tmp_path_factory: pytest.TempPathFactory) -> KrxCalendar:
    return KrxCalendar.load(2024, 2027, cache_dir=Path.home() / ".cache" / "qts")


@pytest.mark.parametrize(("year", "sessions"), [(2024, 244), (2025, 242), (2026, 244)])
def test_session_counts_match_krx(cal: KrxCalendar, year: int, sessions: int) -> None:
    assert len(cal.sessions_in_year(year)) == sessions


@pytest.mark.parametrize(
    "day",
    [
        dt.date(2026, 6, 3),
        dt.date(2026, 7, 17),
        dt.date(2026, 12, 31),
        dt.date(2025, 6, 3),
        dt.date(2026, 2, 17),
    ],
)
def test_corrected_closures(cal: KrxCalendar, day: dt.date) -> None:
    assert not cal.is_session(day)


def test_csat_day_2026_opens_at_ten_and_closes_at_half_past_four(cal: KrxCalendar) -> None:
    opens, closes = cal.session_bounds(dt.date(2026, 11, 19)) or (None, None)
    assert opens == dt.datetime(2026, 11, 19, 10, 0, tzinfo=KST)
    assert closes == dt.datetime(2026, 11, 19, 16, 30, tzinfo=KST)


def test_first_trading_day_opens_at_ten(cal: KrxCalendar) -> None:
    opens, _ = cal.session_bounds(dt.date(2026, 1, 2)) or (None, None)
    assert opens == dt.datetime(2026, 1, 2, 10, 0, tzinfo=KST)


@pytest.mark.parametrize(
    ("hh", "mm", "phase"),
    [
        (8, 29, MarketPhase.CLOSED),
        (8, 30, MarketPhase.PRE_OPEN),
        (9, 0, MarketPhase.CONTINUOUS),
        (15, 19, MarketPhase.CONTINUOUS),
        (15, 20, MarketPhase.CLOSING_AUCTION),
        (15, 30, MarketPhase.CLOSED),
    ],
)
def test_phases_on_a_normal_day(cal: KrxCalendar, hh: int, mm: int, phase: MarketPhase) -> None:
    assert cal.phase_at(dt.datetime(2026, 11, 24, hh, mm, tzinfo=KST)) is phase


def test_settlement_skips_holidays(cal: KrxCalendar) -> None:
    # Wed 2026-12-30 is the last session of 2026; T+2 lands on 2027-01-05 (Jan 1 and 31 closed)
    assert cal.add_sessions(dt.date(2026, 12, 30), 2) == dt.date(2027, 1, 5)


def test_extra_closure_from_config_and_cache_roundtrip(tmp_path: Path) -> None:
    a = KrxCalendar.load(2026, 2026, extra_closures=[dt.date(2026, 11, 24)], cache_dir=tmp_path)
    assert not a.is_session(dt.date(2026, 11, 24))
    assert list(tmp_path.glob("krx-calendar-*.json"))
    b = KrxCalendar.load(2026, 2026, extra_closures=[dt.date(2026, 11, 24)], cache_dir=tmp_path)
    assert b.session_bounds(dt.date(2026, 11, 25)) == a.session_bounds(dt.date(2026, 11, 25))
