"""KRX market rules as pure functions: tick sizes, daily price limits, costs.

Sources: ../shared/krx.md sections 2, 3.1 and 5 (cited there). Integers throughout: KRW has no
fractions, so every amount here is whole won, rounded the way brokers round (down).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from fractions import Fraction

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


# Sell-side tax (securities transaction tax + rural special tax) by settlement year, in
# hundredths of a basis point (1e-6) so every rate is an integer: 0.20% = 2000.
_SELL_TAX_MICRO = {
    Market.KOSPI: {2023: 2000, 2024: 1800, 2025: 1500, 2026: 2000},
    Market.KOSDAQ: {2023: 2000, 2024: 1800, 2025: 1500, 2026: 2000},
    Market.KONEX: {2023: 1000, 2024: 1000, 2025: 1000, 2026: 1000},
}


def sell_tax_rate_micro(market: Market, settlement: dt.date, kind: InstrumentKind) -> int:
    """Tax on a sale, in millionths of the amount. ETFs and ETNs pay no transaction tax.
    Years after the last known one use the last known rate (logged by callers at start)."""
    if kind is not InstrumentKind.STOCK:
        return 0
    table = _SELL_TAX_MICRO[market]
    year = min(max(settlement.year, min(table)), max(table))
    return table[year]


def commission(notional: int, rate_bp: float) -> int:
    """Broker commission on one fill, truncated to the won (brokers round down). The rate is
    taken exactly as written (1.40527 bp stays 1.40527, not its nearest float)."""
    rate = Fraction(str(rate_bp))
    return int(notional * rate.numerator // (rate.denominator * 10_000))


def sell_tax(
    notional: int, market: Market, settlement: dt.date, kind: InstrumentKind = InstrumentKind.STOCK
) -> int:
    return notional * sell_tax_rate_micro(market, settlement, kind) // 1_000_000


def add_business_days(day: dt.date, n: int) -> dt.date:
    """Weekdays only; callers that need KRX holidays use services.runtime.calendar."""
    while n > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day
