"""The session clock: the market phase the observer publishes and execution's session gate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from protocol.codes import Reason
from protocol.enums import MarketPhase, TradingState
from protocol.messages import IntentDenied
from services.runtime.calendar import KST, KrxCalendar
from services.runtime.session import SessionClock
from services.runtime.settings import SessionSettings, Settings
from tests.unit.execution.fakes import make, order


@pytest.fixture(scope="module")
def cal() -> KrxCalendar:
    return KrxCalendar.load(2024, 2027, cache_dir=Path.home() / ".cache" / "qts")


def ns(y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=KST).timestamp()) * 1_000_000_000


CLOSE_1124 = ns(2026, 11, 24, 15, 30)


@pytest.mark.parametrize(
    ("when", "phase", "closes"),
    [
        (ns(2026, 11, 24, 8, 29, 59), MarketPhase.CLOSED, CLOSE_1124),
        (ns(2026, 11, 24, 8, 30), MarketPhase.PRE_OPEN, CLOSE_1124),
        (ns(2026, 11, 24, 9, 0), MarketPhase.CONTINUOUS, CLOSE_1124),
        (ns(2026, 11, 24, 15, 19, 59), MarketPhase.CONTINUOUS, CLOSE_1124),
        (ns(2026, 11, 24, 15, 20), MarketPhase.CLOSING_AUCTION, CLOSE_1124),
        (ns(2026, 11, 24, 15, 30), MarketPhase.CLOSED, CLOSE_1124),
        (ns(2026, 11, 22, 11, 0), MarketPhase.CLOSED, 0),  # a Sunday
        (ns(2026, 7, 17, 11, 0), MarketPhase.CLOSED, 0),  # krx.md correction: Constitution Day
        # CSAT day: everything an hour later
        (ns(2026, 11, 19, 9, 30), MarketPhase.PRE_OPEN, ns(2026, 11, 19, 16, 30)),
    ],
)
def test_exchange_clock_follows_the_corrected_calendar(
    cal: KrxCalendar, when: int, phase: MarketPhase, closes: int
) -> None:
    clock = SessionClock(SessionSettings(clock="exchange"), cal)
    assert clock.at(when) == (phase, closes)


def test_operator_closures_from_config(cal: KrxCalendar) -> None:
    extra = KrxCalendar.load(
        2024, 2027, [dt.date(2026, 11, 25)], cache_dir=Path.home() / ".cache" / "qts"
    )
    clock = SessionClock(SessionSettings(extra_closures=[dt.date(2026, 11, 25)]), extra)
    assert clock.at(ns(2026, 11, 25, 10, 0)).phase is MarketPhase.CLOSED
    assert SessionClock(SessionSettings(), cal).at(ns(2026, 11, 25, 10, 0)).phase is (
        MarketPhase.CONTINUOUS
    )


def test_always_open_is_continuous_at_any_hour() -> None:
    clock = SessionClock(SessionSettings(clock="always_open"))
    assert clock.at(ns(2026, 11, 22, 3, 0)) == (MarketPhase.CONTINUOUS, 0)
    assert clock.open_for_orders(0)


def test_a_real_broker_needs_the_exchange_clock() -> None:
    with pytest.raises(ValueError, match=r"session\.clock must be 'exchange'"):
        Settings(broker={"type": "kis"}, session={"clock": "always_open"})


def test_execution_refuses_orders_outside_the_session(tmp_path: Path, cal: KrxCalendar) -> None:
    engine, adapter, out = make(tmp_path, settings=Settings())
    engine.session = SessionClock(SessionSettings(), cal)
    o = order(intent_ns=ns(2026, 11, 22, 11, 0))
    engine.on_order(o, TradingState.ACTIVE, True, ns(2026, 11, 22, 11, 0), 0)
    assert adapter.submits == []
    assert isinstance(out[-1], IntentDenied) and out[-1].code == Reason.SESSION_CLOSED
    assert "CLOSED" in out[-1].reason
    o = order("i2", intent_ns=ns(2026, 11, 24, 10, 0))
    engine.on_order(o, TradingState.ACTIVE, True, ns(2026, 11, 24, 10, 0), 0)
    assert len(adapter.submits) == 1


def test_replay_is_not_gated_by_the_wall_clock(tmp_path: Path) -> None:
    settings = Settings(observer={"source": "replay", "replay_path": "x.qtsrec.gz"})
    engine, _, _ = make(tmp_path, settings=settings)
    assert engine.session is None
