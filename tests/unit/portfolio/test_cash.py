"""D+0/D+1/D+2 deposit, buying power, withdrawable cash and sellable quantity.

Commission 1.5 bp truncated; sell tax in 2026 0.05% + 0.15%, each truncated."""

from __future__ import annotations

import datetime as dt

from protocol.enums import InstrumentKind, Market, OrderType, Side
from protocol.messages import Instrument, OrderCanceled, OrderFilled, OrderSubmitted
from services.portfolio.engine import PortfolioEngine
from tests.unit.portfolio.test_engine import SYM, Journal, kst_ns

TUE, WED = dt.date(2026, 3, 3), dt.date(2026, 3, 4)


def submitted(
    j: Journal,
    coid: str,
    side: Side,
    qty: int,
    price: int,
    day: dt.date = WED,
    order_type: OrderType = OrderType.LIMIT,
    strategy: str = "s1",
) -> OrderSubmitted:
    j.seq += 1
    return OrderSubmitted(
        seq=j.seq, client_order_id=coid, intent_id=coid, strategy=strategy, symbol=SYM,
        side=side, qty=qty, price=price, order_type=order_type,
        ts_ns=kst_ns(day.year, day.month, day.day),
    )  # fmt: skip


def bought_tuesday_sold_wednesday() -> tuple[PortfolioEngine, Journal]:
    engine, j = PortfolioEngine(1_000_000, 1.5), Journal()
    engine.apply(j.fill(Side.BUY, 10, 50_000, day=(2026, 3, 3)))  # -500,075 on Thu 03-05
    engine.apply(j.fill(Side.BUY, 10, 50_000, day=(2026, 3, 3)))  # -500,075 on Thu 03-05
    # 510,000: fee 76, tax 255 + 765: +508,904 on Fri 03-06
    engine.apply(j.fill(Side.SELL, 10, 51_000, day=(2026, 3, 4)))
    return engine, j


def test_sale_proceeds_buy_at_once_but_are_withdrawable_only_once_settled() -> None:
    engine, _ = bought_tuesday_sold_wednesday()

    assert engine.balance(WED) == {
        "d0": 1_000_000,  # nothing has settled yet
        "d1": 1_000_000 - 1_000_150,  # Thu: both buys settle: -150
        "d2": -150 + 508_904,  # Fri: the sale settles
        "reserved": 0,
        "buying_power": 508_754,
        "withdrawable": 0,  # the lowest of the three is negative: nothing can leave
    }
    assert engine.cash == 508_754
    # on Friday everything has settled
    fri = engine.balance(dt.date(2026, 3, 6))
    assert fri["d0"] == fri["d2"] == fri["withdrawable"] == 508_754


def test_open_buy_reserves_price_and_commission_and_cancel_releases_it() -> None:
    engine, j = bought_tuesday_sold_wednesday()

    engine.apply(submitted(j, "B1", Side.BUY, 5, 60_000))  # 300,000 + fee 45
    assert engine.balance(WED)["reserved"] == 300_045
    assert engine.balance(WED)["buying_power"] == 508_754 - 300_045

    # a partial fill of 2 leaves 3 reserved: 180,000 + 27
    engine.apply(
        OrderFilled(
            seq=j.seq + 1, fill_id="F-B1", client_order_id="B1", broker_order_no="X",
            strategy="s1", symbol=SYM, side=Side.BUY, qty=2, price=60_000, leaves_qty=3,
            exch_ns=kst_ns(2026, 3, 4), ts_ns=kst_ns(2026, 3, 4),
        )
    )  # fmt: skip
    j.seq += 1
    assert engine.balance(WED)["reserved"] == 180_027
    engine.apply(
        OrderCanceled(
            seq=j.seq + 1, client_order_id="B1", broker_order_no="X", strategy="s1",
            symbol=SYM, side=Side.BUY, canceled_qty=3, reason="user", ts_ns=kst_ns(2026, 3, 4),
        )
    )  # fmt: skip
    assert engine.balance(WED)["reserved"] == 0


def test_market_buy_reserves_at_the_upper_limit() -> None:
    engine, j = PortfolioEngine(1_000_000, 1.5), Journal()
    engine.on_instrument(
        Instrument(
            stream=1, seq=1, symbol=SYM, market=Market.KOSPI, kind=InstrumentKind.STOCK,
            base_price=50_000, upper_limit=65_000, lower_limit=35_000,
        )
    )  # fmt: skip

    engine.apply(submitted(j, "M1", Side.BUY, 2, 0, order_type=OrderType.MARKET))

    assert engine.balance(WED)["reserved"] == 130_000 + 19  # fee 19.5


def test_open_sell_holds_shares_back_from_sellable() -> None:
    engine, j = bought_tuesday_sold_wednesday()
    engine.apply(submitted(j, "S1", Side.SELL, 4, 52_000))

    rows = {(r["strategy"], r["symbol"]): r for r in engine.position_rows(WED)}

    assert rows[("", SYM)]["qty"] == 10 and rows[("", SYM)]["sellable"] == 6
    assert rows[("s1", SYM)]["sellable"] == 6
    assert rows[("", SYM)]["avg_price"] == 50_000


def test_yesterdays_unexpired_order_reserves_nothing_today() -> None:
    engine, j = PortfolioEngine(1_000_000, 1.5), Journal()
    engine.apply(submitted(j, "OLD", Side.BUY, 1, 50_000, day=TUE))

    assert engine.balance(TUE)["reserved"] == 50_007
    assert engine.balance(WED)["reserved"] == 0
