"""Portfolio accounting against hand-computed broker statements, to the won.

Commission 1.5 bp per fill, truncated: commission(n) = n * 3 // 20_000.
Sell tax (KOSPI stock) by settlement year: 2025 0% + 0.15%, 2026 0.05% + 0.15%, each truncated.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from protocol.enums import InstrumentKind, Market, Side
from protocol.messages import Instrument, OrderAccepted, OrderFilled
from services.portfolio.engine import PortfolioEngine, settlement_date

KST = ZoneInfo("Asia/Seoul")
SYM = "005930"


def kst_ns(y: int, m: int, d: int, hh: int = 10) -> int:
    return int(dt.datetime(y, m, d, hh, 0, tzinfo=KST).timestamp()) * 1_000_000_000


class Journal:
    """Hand-written fake of the execution journal: numbers events and fills."""

    def __init__(self) -> None:
        self.seq = 0

    def fill(
        self,
        side: Side,
        qty: int,
        price: int,
        day: tuple[int, int, int] = (2025, 12, 26),
        strategy: str = "s1",
        symbol: str = SYM,
        fill_id: str | None = None,
    ) -> OrderFilled:
        self.seq += 1
        return OrderFilled(
            seq=self.seq,
            fill_id=fill_id or f"F{self.seq}",
            client_order_id=f"C{self.seq}",
            broker_order_no=f"B{self.seq}",
            strategy=strategy,
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            leaves_qty=0,
            exch_ns=kst_ns(*day),
            ts_ns=kst_ns(*day),
        )


def book_statement(engine: PortfolioEngine, j: Journal) -> None:
    # two partial fills of one buy order: each pays its own truncated commission
    engine.apply(j.fill(Side.BUY, 3, 70_000))  # 210,000, fee 31 (31.5)
    engine.apply(j.fill(Side.BUY, 7, 70_000))  # 490,000, fee 73 (73.5)
    engine.apply(j.fill(Side.BUY, 5, 71_510))  # 357,550, fee 53 (53.6325); cost 1,057,550


def account(engine: PortfolioEngine, strategy: str = "s1") -> dict[str, int]:
    (pos,) = [p for p in engine.positions() if p.strategy == strategy and p.symbol == SYM]
    return {k: getattr(pos, k) for k in ("qty", "cost", "realized", "fees", "taxes")}


def test_partial_buys_then_average_cost_and_per_fill_commission() -> None:
    engine, j = PortfolioEngine(10_000_000, 1.5), Journal()

    book_statement(engine, j)

    assert account(engine) == {"qty": 15, "cost": 1_057_550, "realized": 0, "fees": 157, "taxes": 0}
    assert engine.cash == 10_000_000 - 1_057_550 - 157  # 8,942,293


def test_sales_across_the_tax_year_boundary_match_the_statement() -> None:
    engine, j = PortfolioEngine(10_000_000, 1.5), Journal()
    book_statement(engine, j)

    # Fri 2025-12-26 settles Tue 2025-12-30: 2025 rate 0.15%
    # 506,100: fee 75 (75.915), tax 759 (759.15); removed 1,057,550*7//15 = 493,523
    engine.apply(j.fill(Side.SELL, 7, 72_300, day=(2025, 12, 26)))
    assert account(engine) == {
        "qty": 8, "cost": 564_027, "realized": 12_577, "fees": 232, "taxes": 759
    }  # fmt: skip

    # Mon 2025-12-29: KRX is closed on 12-31 and 01-01, so it settles Fri 2026-01-02 and pays
    # the 2026 rate (0.05% + 0.15%, each truncated). 219,000: fee 32 (32.85),
    # tax 109 (109.5) + 328 (328.5) = 437; removed 564,027*3//8 = 211,510 (.125)
    engine.apply(j.fill(Side.SELL, 3, 73_000, day=(2025, 12, 29)))
    assert account(engine) == {
        "qty": 5, "cost": 352_517, "realized": 20_067, "fees": 264, "taxes": 1_196
    }  # fmt: skip

    # Mon 2026-01-05 settles 2026-01-07: 370,000: fee 55 (55.5), tax 185 + 555 = 740
    engine.apply(j.fill(Side.SELL, 5, 74_000, day=(2026, 1, 5)))
    assert account(engine) == {
        "qty": 0, "cost": 0, "realized": 37_550, "fees": 319, "taxes": 1_936
    }  # fmt: skip

    # 8,942,293 + (506,100 - 75 - 759) + (219,000 - 32 - 437) + (370,000 - 55 - 740)
    assert engine.cash == 10_035_295
    pnl = engine.pnl()
    assert pnl["net"] == 37_550 - 319 - 1_936 == engine.cash - 10_000_000
    assert pnl["equity"] == engine.cash


def test_settlement_dates_are_t_plus_2_in_kst_skipping_year_end_closures() -> None:
    assert settlement_date(kst_ns(2025, 12, 26)) == dt.date(2025, 12, 30)
    assert settlement_date(kst_ns(2025, 12, 29)) == dt.date(2026, 1, 2)
    # 08:30 KST on 2026-01-05 is still 2026-01-04 in UTC: the KST date decides
    assert settlement_date(kst_ns(2026, 1, 5, hh=8)) == dt.date(2026, 1, 7)


def test_mark_to_last_trade_then_unrealized_and_equity() -> None:
    engine, j = PortfolioEngine(10_000_000, 1.5), Journal()
    book_statement(engine, j)

    changed = engine.on_trade(SYM, 75_000)

    assert changed
    (acct,) = [p for p in engine.positions() if p.strategy == ""]
    assert acct.unrealized == 15 * 75_000 - 1_057_550 == 67_450
    assert engine.equity() == 8_942_293 + 15 * 75_000
    assert engine.pnl()["net"] == 67_450 - 157


def test_replayed_fill_then_not_double_counted() -> None:
    engine, j = PortfolioEngine(10_000_000, 1.5), Journal()
    fill = j.fill(Side.BUY, 10, 50_000)
    engine.apply(fill)
    cash = engine.cash

    same_seq = engine.apply(fill)
    same_fill_new_seq = engine.apply(
        OrderFilled(**{**{f: getattr(fill, f) for f in fill.__struct_fields__}, "seq": 9})
    )

    assert not same_seq and not same_fill_new_seq
    assert engine.cash == cash and account(engine)["qty"] == 10
    assert engine.exec_seq == 9  # the seq was consumed even though the fill was a duplicate


def test_non_fill_events_then_only_seq_advances() -> None:
    engine = PortfolioEngine(1_000, 1.5)
    ev = OrderAccepted(
        seq=4, client_order_id="C", broker_order_no="B", strategy="s1", symbol=SYM,
        side=Side.BUY, qty=1, price=1, ts_ns=0,
    )  # fmt: skip

    assert not engine.apply(ev)
    assert engine.exec_seq == 4 and engine.positions() == [] and engine.cash == 1_000


def test_two_strategies_then_split_rows_and_account_average_cost() -> None:
    engine, j = PortfolioEngine(1_000_000, 1.5), Journal()
    engine.apply(j.fill(Side.BUY, 10, 10_000, strategy="a"))  # fee 15
    engine.apply(j.fill(Side.BUY, 10, 12_000, strategy="b"))  # fee 18
    # 110,000 on 2026-01-05: fee 16 (16.5), tax 220
    engine.apply(j.fill(Side.SELL, 10, 11_000, day=(2026, 1, 5), strategy="a"))

    pnl = engine.pnl()

    assert pnl["by_strategy"]["a"] == {
        "realized": 10_000, "unrealized": 0, "gross": 10_000, "fees": 31, "taxes": 220,
        "costs": 251, "net": 9_749, "bought": 100_000, "sold": 110_000,
    }  # fmt: skip
    # b is marked at the last price seen (11,000, the sale) against its 120,000 cost
    assert pnl["by_strategy"]["b"] == {
        "realized": 0, "unrealized": -10_000, "gross": -10_000, "fees": 18, "taxes": 0,
        "costs": 18, "net": -10_018, "bought": 120_000, "sold": 0,
    }  # fmt: skip
    # the account pools both at an average of 11,000: the sale realizes nothing there
    assert account(engine, "") == {"qty": 10, "cost": 110_000, "realized": 0, "fees": 49,
                                   "taxes": 220}  # fmt: skip
    assert engine.cash == 1_000_000 - 100_015 - 120_018 + 110_000 - 16 - 220


def test_etf_sale_then_no_transaction_tax() -> None:
    engine, j = PortfolioEngine(1_000_000, 1.5), Journal()
    engine.on_instrument(
        Instrument(
            stream=1, seq=1, symbol=SYM, market=Market.KOSPI, kind=InstrumentKind.ETF,
            base_price=10_000, upper_limit=13_000, lower_limit=7_000,
        )
    )  # fmt: skip
    engine.apply(j.fill(Side.BUY, 10, 10_000))
    engine.apply(j.fill(Side.SELL, 10, 10_500, day=(2026, 1, 5)))

    assert account(engine)["taxes"] == 0
    assert engine.cash == 1_000_000 - 100_015 + 105_000 - 15


def test_snapshot_totals_match_account_rows() -> None:
    engine, j = PortfolioEngine(10_000_000, 1.5), Journal()
    book_statement(engine, j)
    engine.apply(j.fill(Side.SELL, 7, 72_300))

    snap = engine.snapshot(seq=1, ts_ns=0)

    assert snap.exec_seq == 4 and snap.cash == engine.cash
    assert {p.strategy for p in snap.positions} == {"", "s1"}
    assert snap.realized == 12_577 and snap.fees == 232 and snap.taxes == 759
    assert snap.equity == engine.cash + 8 * 72_300
