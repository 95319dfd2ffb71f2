"""Hand-computed broker statements: KIS and Kiwoom schedules, both sell taxes, KOSDAQ, and the
tax year decided by the settlement date on the KRX calendar. Every figure is worked in the
comments; the asserts hold literal won."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from protocol.enums import InstrumentKind, Market, Side
from protocol.messages import Instrument
from services.portfolio.engine import PortfolioEngine, settlement_date
from services.runtime import krx
from services.runtime.calendar import KrxCalendar
from services.runtime.settings import ConfigError, load_settings
from tests.unit.portfolio.test_engine import SYM, Journal, kst_ns

KIS = krx.FeeSchedule(stock_bp=1.40527, etf_bp=1.46527)
KOSDAQ_SYM = "247540"


@pytest.fixture(scope="module")
def cal() -> KrxCalendar:
    return KrxCalendar.load(2024, 2027, cache_dir=Path.home() / ".cache" / "qts")


def instrument(
    symbol: str, market: Market, kind: InstrumentKind = InstrumentKind.STOCK
) -> Instrument:
    return Instrument(
        stream=1, seq=1, symbol=symbol, market=market, kind=kind,
        base_price=70_000, upper_limit=91_000, lower_limit=49_000,
    )  # fmt: skip


def row(engine: PortfolioEngine, symbol: str = SYM, strategy: str = "") -> dict[str, int]:
    (p,) = [p for p in engine.position_rows(dt.date(2026, 3, 3)) if p["symbol"] == symbol
            and p["strategy"] == strategy]  # fmt: skip
    return {k: p[k] for k in ("qty", "avg_price", "cost", "realized", "fees", "taxes")}


def test_kis_buy_then_sell_in_2026_matches_the_statement_to_the_won(cal: KrxCalendar) -> None:
    engine, j = PortfolioEngine(5_000_000, KIS, cal), Journal()

    # buy 37 @ 71,300 = 2,638,100; commission 2,638,100 x 0.0140527% = 370.72 -> 370
    engine.apply(j.fill(Side.BUY, 37, 71_300, day=(2026, 3, 3)))
    assert row(engine) == {
        "qty": 37, "avg_price": 71_300, "cost": 2_638_100, "realized": 0, "fees": 370,
        "taxes": 0,
    }  # fmt: skip
    assert engine.cash == 5_000_000 - 2_638_100 - 370  # 2,361,530

    # sell 37 @ 72,100 = 2,667,700 on Tue 03-03, settles Thu 03-05 (2026 rates):
    # commission 374.88 -> 374; transaction tax 0.05% 1,333.85 -> 1,333;
    # rural special tax 0.15% 4,001.55 -> 4,001; realised (72,100 - 71,300) x 37 = 29,600
    engine.apply(j.fill(Side.SELL, 37, 72_100, day=(2026, 3, 3)))
    assert row(engine) == {
        "qty": 0, "avg_price": 0, "cost": 0, "realized": 29_600, "fees": 744,
        "taxes": 5_334,
    }  # fmt: skip
    # 2,361,530 + 2,667,700 - 374 - 1,333 - 4,001
    assert engine.cash == 5_023_522
    assert engine.pnl()["net"] == 29_600 - 744 - 5_334 == 23_522


def test_separate_truncation_of_the_two_taxes_costs_one_won_less() -> None:
    engine, j = PortfolioEngine(10_000_000, 1.5), Journal()
    engine.apply(j.fill(Side.BUY, 1, 1_001_010, day=(2026, 3, 3)))  # fee 150 (150.15)
    # 1,001,010: transaction tax 500.505 -> 500, rural 1,501.515 -> 1,501: 2,001
    # (0.20% of the whole would be 2,002.02 -> 2,002); commission 150
    engine.apply(j.fill(Side.SELL, 1, 1_001_010, day=(2026, 3, 3)))

    assert row(engine)["taxes"] == 2_001 and row(engine)["fees"] == 300
    assert engine.cash == 10_000_000 - 300 - 2_001


def test_kosdaq_pays_transaction_tax_only_at_the_settlement_years_rate() -> None:
    engine, j = PortfolioEngine(10_000_000, 1.5), Journal()
    engine.on_instrument(instrument(KOSDAQ_SYM, Market.KOSDAQ))
    engine.apply(j.fill(Side.BUY, 300, 15_230, symbol=KOSDAQ_SYM, day=(2025, 3, 4)))
    # 100 @ 15,300 = 1,530,000 in 2025: 0.15% = 2,295; commission 229 (229.5)
    engine.apply(j.fill(Side.SELL, 100, 15_300, symbol=KOSDAQ_SYM, day=(2025, 3, 4)))
    # 100 @ 15,330 = 1,533,000 in 2026: 0.20% = 3,066; commission 229 (229.95)
    engine.apply(j.fill(Side.SELL, 100, 15_330, symbol=KOSDAQ_SYM, day=(2026, 3, 3)))

    # buy 4,569,000: commission 685 (685.35); realised 7,000 + 10,000
    assert row(engine, KOSDAQ_SYM) == {
        "qty": 100, "avg_price": 15_230, "cost": 1_523_000, "realized": 17_000,
        "fees": 685 + 229 + 229, "taxes": 2_295 + 3_066,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("trade_day", "settles", "tax"),
    [
        # 2024-12-26 Thu settles Mon 12-30: 2024 rate 0.03% + 0.15%: 300 + 1,500
        ((2024, 12, 26), dt.date(2024, 12, 30), 300 + 1_500),
        # 2024-12-27 Fri: 12-31 and 01-01 closed, settles Thu 2025-01-02: 0% + 0.15%
        ((2024, 12, 27), dt.date(2025, 1, 2), 0 + 1_500),
        # 2025-12-26 Fri settles Tue 12-30: 2025 rate
        ((2025, 12, 26), dt.date(2025, 12, 30), 0 + 1_500),
        # 2025-12-29 Mon settles Fri 2026-01-02: 2026 rate 0.05% + 0.15%
        ((2025, 12, 29), dt.date(2026, 1, 2), 500 + 1_500),
    ],
)
def test_tax_year_follows_the_krx_settlement_date(
    cal: KrxCalendar, trade_day: tuple[int, int, int], settles: dt.date, tax: int
) -> None:
    engine, j = PortfolioEngine(10_000_000, 1.5, cal), Journal()
    engine.apply(j.fill(Side.BUY, 10, 100_000, day=trade_day))
    sale = j.fill(Side.SELL, 10, 100_000, day=trade_day)  # 1,000,000

    engine.apply(sale)

    assert settlement_date(sale.exch_ns, cal) == settles
    assert engine.fill_costs(sale) == (150, tax, settles)
    assert row(engine)["taxes"] == tax


def test_settlement_on_the_calendar_skips_chuseok(cal: KrxCalendar) -> None:
    # Wed 2026-09-23: 09-24 and 09-25 are Chuseok closures, so T+2 is Tue 09-29
    assert settlement_date(kst_ns(2026, 9, 23), cal) == dt.date(2026, 9, 29)
    # without the calendar only the year-end closures are known: a day early, same year
    assert settlement_date(kst_ns(2026, 9, 23)) == dt.date(2026, 9, 25)


def test_etf_commission_uses_the_brokers_etf_rate() -> None:
    engine, j = PortfolioEngine(10_000_000, KIS), Journal()
    engine.on_instrument(instrument("069500", Market.KOSPI, InstrumentKind.ETF))
    # 100 @ 35,000 = 3,500,000 x 0.0146527% = 512.84 -> 512; no sell tax on ETFs
    engine.apply(j.fill(Side.BUY, 100, 35_000, symbol="069500", day=(2026, 3, 3)))
    engine.apply(j.fill(Side.SELL, 100, 35_000, symbol="069500", day=(2026, 3, 3)))

    assert row(engine, "069500")["fees"] == 1_024 and row(engine, "069500")["taxes"] == 0


def test_negative_initial_cash_then_clear_error() -> None:
    with pytest.raises(ValueError, match="initial cash"):
        PortfolioEngine(-1, 1.5)


def test_a_calendar_that_arrives_late_redates_the_settlements(cal: KrxCalendar) -> None:
    engine, j = PortfolioEngine(1_000_000, 1.5), Journal()
    engine.apply(j.fill(Side.BUY, 1, 100_000, day=(2026, 9, 23)))  # -100,015
    wed = dt.date(2026, 9, 23)

    # weekdays only: it would settle on Fri 09-25
    assert engine.balance(dt.date(2026, 9, 25))["d0"] == 899_985

    engine.calendar = cal  # loaded off the loop: Chuseok closes 09-24 and 09-25
    bal = engine.balance(wed)

    assert (bal["d0"], bal["d1"], bal["d2"]) == (1_000_000, 1_000_000, 899_985)  # D+2 = 09-29
    assert engine.balance(dt.date(2026, 9, 25))["d0"] == 1_000_000
    assert engine.balance(dt.date(2026, 9, 28))["d0"] == 1_000_000
    assert engine.balance(dt.date(2026, 9, 29))["d0"] == 899_985


def test_fee_schedule_by_broker_from_settings(tmp_path: Path) -> None:
    acct = load_settings(env={}, config_dir=tmp_path).account

    assert (acct.broker_fees("kis").stock_bp, acct.broker_fees("kis").etf_bp) == (1.40527, 1.46527)
    assert acct.broker_fees("kiwoom").stock_bp == 1.5
    # the paper venue charges commission_rate_bp on everything: the books follow it
    paper = load_settings(env={"QTS_ACCOUNT__COMMISSION_RATE_BP": "0.5"}, config_dir=tmp_path)
    assert paper.account.broker_fees("paper").stock_bp == 0.5
    assert paper.account.broker_fees("paper").etf_bp == 0.5
    ten = load_settings(env={"QTS_ACCOUNT__FEES__KIWOOM__UNIT": "10"}, config_dir=tmp_path)
    assert ten.account.broker_fees("kiwoom").unit == 10


def test_bad_fee_settings_then_config_error_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"account\.fees\.kis\.unit"):
        load_settings(env={"QTS_ACCOUNT__FEES__KIS__UNIT": "0"}, config_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"account\.fees"):
        load_settings(env={"QTS_ACCOUNT__FEES__NOBROKER__STOCK_BP": "1"}, config_dir=tmp_path)
