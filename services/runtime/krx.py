"""KRX market rules as pure functions: tick sizes, daily price limits, costs.

Sources: ../shared/krx.md sections 2, 3.1 and 5 (cited there). Integers throughout: KRW has no
fractions, so every amount here is whole won, rounded the way brokers round (down).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from protocol.enums import InstrumentKind, Market

# Stocks on KOSPI, KOSDAQ and KONEX since 2023-01-25: (lower bound of band, tick)
_STOCK_BANDS = (0, 2_000, 5_000, 20_000, 50_000, 200_000, 500_000)
_STOCK_TICKS = (1, 5, 10, 50, 100, 500, 1_000)


def tick_size(price: int, kind: InstrumentKind = InstrumentKind.STOCK) -> int:
    """The tick that applies at `price` (krx.md section 2). ETF/ETN: 1 below 2,000, else 5."""
    if kind is not InstrumentKind.STOCK:
        return 1 if price < 2_000 else 5
    return _STOCK_TICKS[bisect_right(_STOCK_BANDS, price) - 1]


def on_tick(price: int, kind: InstrumentKind = InstrumentKind.STOCK) -> bool:
    return price > 0 and price % tick_size(price, kind) == 0


def round_to_tick(price: int, kind: InstrumentKind = InstrumentKind.STOCK, up: bool = False) -> int:
    """The nearest valid price at or below (or at or above, with up=True) `price`."""
    tick = tick_size(price, kind)
    down = price - price % tick
    if not up or down == price:
        return max(down, tick_size(1, kind))
    above = down + tick
    # crossing a band boundary upward can change the tick; the boundary itself is always valid
    return above if on_tick(above, kind) else round_to_tick(above, kind, up=True)


def ticks_away(price: int, n: int, kind: InstrumentKind = InstrumentKind.STOCK) -> int:
    """Move `n` ticks up (n > 0) or down (n < 0) from a valid price, respecting band changes."""
    for _ in range(abs(n)):
        if n > 0:
            price += tick_size(price, kind)
        else:
            below = price - 1
            price = below - below % tick_size(below, kind)
    return price


def price_limits(
    base_price: int, kind: InstrumentKind = InstrumentKind.STOCK, market: Market = Market.KOSPI
) -> tuple[int, int]:
    """(lower, upper) daily limit from the base price (krx.md 3.1): the band is base x 30%
    (15% on KONEX) truncated to the base price's tick; the upper limit is truncated again to the
    tick at its own price."""
    pct = 15 if market is Market.KONEX else 30
    base_tick = tick_size(base_price, kind)
    band = base_price * pct // 100
    band -= band % base_tick
    upper = base_price + band
    upper -= upper % tick_size(upper, kind)
    lower = max(base_price - band, 1)
    return lower, upper


# Sell-side taxes by settlement year (krx.md 5.1), in millionths of the amount so every rate is
# an integer (0.05% = 500): (securities transaction tax, rural special tax). KOSPI pays both;
# KOSDAQ and KONEX pay the transaction tax only. A statement shows the two as separate lines
# (거래세, 농특세), each truncated to the won on its own, so they are rounded separately here.
_SELL_TAX_PARTS_MICRO = {
    Market.KOSPI: {2023: (500, 1500), 2024: (300, 1500), 2025: (0, 1500), 2026: (500, 1500)},
    Market.KOSDAQ: {2023: (2000, 0), 2024: (1800, 0), 2025: (1500, 0), 2026: (2000, 0)},
    Market.KONEX: {2023: (1000, 0), 2024: (1000, 0), 2025: (1000, 0), 2026: (1000, 0)},
}
SETTLEMENT_SESSIONS = 2  # T+2 (krx.md 5.3)


def sell_tax_parts_micro(
    market: Market, settlement: dt.date, kind: InstrumentKind = InstrumentKind.STOCK
) -> tuple[int, int]:
    """(transaction tax, rural special tax) on a sale, in millionths of the amount. ETFs and
    ETNs pay no transaction tax. Years outside the table use the nearest known year (callers
    warn at start when the calendar runs past it)."""
    if kind is not InstrumentKind.STOCK:
        return 0, 0
    table = _SELL_TAX_PARTS_MICRO[market]
    year = min(max(settlement.year, min(table)), max(table))
    return table[year]


def sell_tax_rate_micro(market: Market, settlement: dt.date, kind: InstrumentKind) -> int:
    """Total tax on a sale, in millionths of the amount (0.20% = 2000)."""
    return sum(sell_tax_parts_micro(market, settlement, kind))


def last_tax_year() -> int:
    return max(max(t) for t in _SELL_TAX_PARTS_MICRO.values())


def commission(notional: int, rate_bp: float, unit: int = 1) -> int:
    """Broker commission on one fill, truncated to the won (brokers round down), or to a
    multiple of `unit` won for a broker that cuts below 10 won. The rate is taken exactly as
    written (1.40527 bp stays 1.40527, not its nearest float)."""
    rate = Fraction(str(rate_bp))
    fee = int(notional * rate.numerator // (rate.denominator * 10_000))
    return fee - fee % unit


def sell_tax_split(
    notional: int, market: Market, settlement: dt.date, kind: InstrumentKind = InstrumentKind.STOCK
) -> tuple[int, int]:
    """(transaction tax, rural special tax) of one sale, each truncated to the won."""
    stt, rural = sell_tax_parts_micro(market, settlement, kind)
    return notional * stt // 1_000_000, notional * rural // 1_000_000


def sell_tax(
    notional: int, market: Market, settlement: dt.date, kind: InstrumentKind = InstrumentKind.STOCK
) -> int:
    """Both sell taxes of one sale, each truncated to the won, then added."""
    return sum(sell_tax_split(notional, market, settlement, kind))


@dataclass(frozen=True)
class FeeSchedule:
    """One broker's online commission per side (krx.md 5.2), in basis points, by product."""

    stock_bp: float = 1.5
    etf_bp: float = 1.5  # ETF, ETN (KIS charges them a little more)
    unit: int = 1  # the commission of a fill is truncated to a multiple of this many won

    def commission(self, notional: int, kind: InstrumentKind = InstrumentKind.STOCK) -> int:
        rate = self.stock_bp if kind is InstrumentKind.STOCK else self.etf_bp
        return commission(notional, rate, self.unit)


class SessionCalendar(Protocol):
    """What settlement needs of services.runtime.calendar.KrxCalendar."""

    def add_sessions(self, day: dt.date, n: int) -> dt.date: ...


def _year_end_closure(day: dt.date) -> bool:
    """KRX closes on Jan 1 and on Dec 31 (or the last weekday before it) every year, and
    Christmas is always a holiday: the closures that decide a settlement's tax year."""
    if (day.month, day.day) in ((1, 1), (12, 25)):
        return True
    if day.month != 12 or day.day < 29:
        return False
    last = dt.date(day.year, 12, 31)
    while last.weekday() >= 5:
        last -= dt.timedelta(days=1)
    return day == last


def add_business_days(day: dt.date, n: int) -> dt.date:
    """Weekdays, skipping the closures KRX has every year (Jan 1, Dec 25, the last weekday of
    December). Without the lunar and ad-hoc holidays a date inside the year may come out a
    day or two early, but the year, and so the tax rate, is right. Callers that have the KRX
    calendar use settlement_date(day, calendar)."""
    while n > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5 and not _year_end_closure(day):
            n -= 1
    return day


def settlement_date(trade_date: dt.date, calendar: SessionCalendar | None = None) -> dt.date:
    """T+2 on the KRX calendar when given one (and it reaches that far), else
    add_business_days."""
    if calendar is not None:
        try:
            return calendar.add_sessions(trade_date, SETTLEMENT_SESSIONS)
        except ValueError:
            pass
    return add_business_days(trade_date, SETTLEMENT_SESSIONS)
