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
