"""When the performance service writes the end-of-day report by itself."""

from __future__ import annotations

import datetime as dt

from services.performance.service import KST, report_due

CLOSE = dt.datetime(2026, 11, 25, 15, 30, tzinfo=KST)
TEN_MIN = dt.timedelta(minutes=10)


def test_report_due_ten_minutes_after_the_close() -> None:
    assert not report_due(CLOSE, CLOSE, TEN_MIN)
    assert not report_due(CLOSE + TEN_MIN - dt.timedelta(seconds=1), CLOSE, TEN_MIN)
    assert report_due(CLOSE + TEN_MIN, CLOSE, TEN_MIN)


def test_csat_day_close_at_half_past_four_moves_the_report() -> None:
    csat_close = dt.datetime(2026, 11, 19, 16, 30, tzinfo=KST)
    assert not report_due(dt.datetime(2026, 11, 19, 16, 0, tzinfo=KST), csat_close, TEN_MIN)
    assert report_due(dt.datetime(2026, 11, 19, 16, 40, tzinfo=KST), csat_close, TEN_MIN)


def test_no_report_on_a_day_without_a_session() -> None:
    assert not report_due(CLOSE + TEN_MIN, None, TEN_MIN)
