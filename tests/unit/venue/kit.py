"""Builders for the venue's unit tests: reference data, snapshots, prints and a funded venue.

Commission 1.5 bp per fill, truncated: commission(n) = n * 3 // 20_000.
Sell tax (KOSPI stock) by settlement year: 2025 0.15%, 2026 0.20%, truncated.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from protocol.enums import InstrumentKind, Market, MarketPhase, OrderType, Side, TimeInForce
from protocol.messages import Book, Instrument, PhaseChanged, Trade
from services.runtime import krx
from services.venue.matching import SubmitResult, Venue

KST = ZoneInfo("Asia/Seoul")
SYM = "005930"  # base 71,000: limits [49,700, 92,300], tick 100 between 50,000 and 200,000
CASH = 100_000_000
BP = 1.5


def kst_ns(y: int, m: int, d: int, hh: int = 10) -> int:
    return int(dt.datetime(y, m, d, hh, 0, tzinfo=KST).timestamp()) * 1_000_000_000


NOW = kst_ns(2025, 12, 26)  # a Friday: settles Tuesday 2025-12-30 (0.15% tax)


def instrument(
    symbol: str = SYM,
    base: int = 71_000,
    market: Market = Market.KOSPI,
    kind: InstrumentKind = InstrumentKind.STOCK,
) -> Instrument:
    lower, upper = krx.price_limits(base, kind, market)
    return Instrument(
        stream=1,
        seq=1,
        symbol=symbol,
        market=market,
        kind=kind,
        base_price=base,
        upper_limit=upper,
        lower_limit=lower,
    )


def book(bids: list[tuple[int, int]], asks: list[tuple[int, int]], symbol: str = SYM) -> Book:
    return Book(stream=1, seq=2, symbol=symbol, exch_ns=NOW, bids=bids, asks=asks)


def trade(price: int, qty: int, symbol: str = SYM) -> Trade:
    return Trade(stream=1, seq=3, symbol=symbol, exch_ns=NOW, price=price, qty=qty)


def phase(p: MarketPhase, symbol: str = "") -> PhaseChanged:
    return PhaseChanged(stream=1, seq=4, symbol=symbol, exch_ns=NOW, phase=p)


def venue(
    cash: int = CASH, holdings: dict[str, int] | None = None, queue_model: bool = True
) -> Venue:
    v = Venue(cash, BP, queue_model)
    v.holdings = dict(holdings or {})
    v.on_instrument(instrument())
    return v


def buy(
    v: Venue,
    qty: int,
    price: int,
    order_type: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.DAY,
    now: int = NOW,
    symbol: str = SYM,
) -> SubmitResult:
    return v.submit(symbol, Side.BUY, qty, price, order_type, tif, now)


def sell(
    v: Venue,
    qty: int,
    price: int,
    order_type: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.DAY,
    now: int = NOW,
    symbol: str = SYM,
) -> SubmitResult:
    return v.submit(symbol, Side.SELL, qty, price, order_type, tif, now)


def fee(notional: int) -> int:
    return notional * 3 // 20_000
