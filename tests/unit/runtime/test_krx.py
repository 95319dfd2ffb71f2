from __future__ import annotations

import datetime as dt

import pytest

from protocol.enums import InstrumentKind, Market
from services.runtime import krx


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        (1, 1),
        (1_999, 1),
        (2_000, 5),
        (4_995, 5),
        (5_000, 10),
        (19_990, 10),
        (20_000, 50),
        (49_950, 50),
        (50_000, 100),
        (199_900, 100),
        (200_000, 500),
        (499_500, 500),
        (500_000, 1_000),
        (1_500_000, 1_000),
    ],
)
def test_stock_tick_table_2023(price: int, tick: int) -> None:
    assert krx.tick_size(price) == tick


def test_etf_ticks() -> None:
    assert krx.tick_size(1_999, InstrumentKind.ETF) == 1
    assert krx.tick_size(2_000, InstrumentKind.ETF) == 5
    assert krx.tick_size(600_000, InstrumentKind.ETN) == 5


def test_on_tick() -> None:
    assert krx.on_tick(71_000)
    assert not krx.on_tick(71_050)
    assert not krx.on_tick(0)


def test_ticks_away_crosses_band_boundaries() -> None:
    assert krx.ticks_away(19_990, 1) == 20_000
    assert krx.ticks_away(20_000, 1) == 20_050
    assert krx.ticks_away(20_000, -1) == 19_990
    assert krx.ticks_away(50_000, -2) == 49_900


def test_round_to_tick() -> None:
    assert krx.round_to_tick(71_050) == 71_000
    assert krx.round_to_tick(71_050, up=True) == 71_100
    assert krx.round_to_tick(19_995, up=True) == 20_000


def test_price_limits_worked_example_from_krx_md() -> None:
    # base 16,670: band 5,001 -> 5,000 (tick 10 at base); upper 21,670 -> 21,650 (tick 50)
    assert krx.price_limits(16_670) == (11_670, 21_650)


def test_price_limits_konex_is_15_percent() -> None:
    assert krx.price_limits(10_000, market=Market.KONEX) == (8_500, 11_500)


def test_commission_truncates_to_the_won() -> None:
    assert krx.commission(71_000, 1.5) == 10  # 10.65 -> 10
    assert krx.commission(1_000_000, 1.40527) == 140  # 140.527 -> 140, exact decimal rate


@pytest.mark.parametrize(
    ("settles", "rate_micro"),
    [(dt.date(2024, 6, 1), 1800), (dt.date(2025, 12, 30), 1500), (dt.date(2026, 1, 2), 2000)],
)
def test_sell_tax_follows_the_settlement_year(settles: dt.date, rate_micro: int) -> None:
    assert krx.sell_tax(10_000_000, Market.KOSPI, settles) == 10_000_000 * rate_micro // 1_000_000


def test_etf_sale_pays_no_transaction_tax() -> None:
    assert krx.sell_tax(10_000_000, Market.KOSPI, dt.date(2026, 3, 3), InstrumentKind.ETF) == 0


def test_tax_rounds_down() -> None:
    assert krx.sell_tax(71_050, Market.KOSDAQ, dt.date(2026, 3, 3)) == 142  # 142.1


def test_add_business_days_skips_weekends() -> None:
    assert krx.add_business_days(dt.date(2026, 11, 20), 2) == dt.date(2026, 11, 24)  # Fri -> Tue


def test_commission_truncates_to_the_brokers_unit() -> None:
    assert krx.commission(1_234_567, 1.5) == 185  # 185.185
    assert krx.commission(1_234_567, 1.5, unit=10) == 180


@pytest.mark.parametrize(
    ("market", "settles", "parts"),
    [
        (Market.KOSPI, dt.date(2024, 6, 3), (300, 1500)),
        (Market.KOSPI, dt.date(2025, 6, 2), (0, 1500)),
        (Market.KOSPI, dt.date(2026, 6, 2), (500, 1500)),
        (Market.KOSDAQ, dt.date(2024, 6, 3), (1800, 0)),
        (Market.KOSDAQ, dt.date(2025, 6, 2), (1500, 0)),
        (Market.KOSDAQ, dt.date(2026, 6, 2), (2000, 0)),
        (Market.KONEX, dt.date(2026, 6, 2), (1000, 0)),
    ],
)
def test_tax_parts_by_market_and_settlement_year(
    market: Market, settles: dt.date, parts: tuple[int, int]
) -> None:
    assert krx.sell_tax_parts_micro(market, settles) == parts
    assert krx.sell_tax_rate_micro(market, settles, InstrumentKind.STOCK) == sum(parts)


def test_kospi_taxes_are_truncated_one_by_one() -> None:
    # 705,000 in 2026: 352.5 -> 352 and 1,057.5 -> 1,057; not 1,410 for the 0.20% total
    assert krx.sell_tax_split(705_000, Market.KOSPI, dt.date(2026, 1, 2)) == (352, 1_057)
    assert krx.sell_tax(705_000, Market.KOSPI, dt.date(2026, 1, 2)) == 1_409


def test_add_business_days_skips_the_year_end_closures() -> None:
    assert krx.add_business_days(dt.date(2025, 12, 29), 2) == dt.date(2026, 1, 2)  # 12-31, 01-01
    assert krx.add_business_days(dt.date(2026, 12, 23), 2) == dt.date(2026, 12, 28)  # 12-25
    # 2027-12-31 is a Friday: closed; 2028-12-31 is a Sunday, so Fri 12-29 is the closure
    assert krx.add_business_days(dt.date(2027, 12, 30), 1) == dt.date(2028, 1, 3)
    assert krx.add_business_days(dt.date(2028, 12, 28), 1) == dt.date(2029, 1, 2)


class _Sessions:
    """A fake calendar: every day is a session until `end`."""

    def __init__(self, end: dt.date) -> None:
        self.end = end

    def add_sessions(self, day: dt.date, n: int) -> dt.date:
        out = day + dt.timedelta(days=n)
        if out > self.end:
            raise ValueError("calendar ends")
        return out


def test_settlement_date_uses_the_calendar_then_falls_back_past_its_end() -> None:
    cal = _Sessions(dt.date(2026, 12, 31))
    assert krx.settlement_date(dt.date(2026, 3, 6), cal) == dt.date(2026, 3, 8)  # a Sunday
    assert krx.settlement_date(dt.date(2026, 12, 30), cal) == dt.date(2027, 1, 5)  # fallback
    assert krx.settlement_date(dt.date(2026, 3, 6)) == dt.date(2026, 3, 10)


def test_fee_schedule_by_product() -> None:
    kis = krx.FeeSchedule(stock_bp=1.40527, etf_bp=1.46527)
    assert kis.commission(1_000_000) == 140
    assert kis.commission(1_000_000, InstrumentKind.ETF) == 146
