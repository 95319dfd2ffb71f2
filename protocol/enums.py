"""Small, dependency-free enumerations shared by every wire type.

They encode as their string values, so a frame stays readable in a MessagePack dump and a new
member never changes an old one's meaning (never reuse or rename a value).
"""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: position change per share."""
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    """KRX order types (krx.md section 4); brokers map them to their own codes."""

    LIMIT = "LIMIT"  # 지정가
    MARKET = "MARKET"  # 시장가
    CONDITIONAL = "CONDITIONAL"  # 조건부지정가
    BEST = "BEST"  # 최유리지정가: priced at the best opposite quote
    PRIORITY = "PRIORITY"  # 최우선지정가: priced at the best same-side quote


class TimeInForce(StrEnum):
    DAY = "DAY"  # rests until filled, cancelled or the close
    IOC = "IOC"
    FOK = "FOK"


class TradingState(StrEnum):
    """Owned by the supervisor service; see services/supervisor/states.py for transitions."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"  # only orders that shrink a position
    HALTED = "HALTED"  # nothing but cancels


class OrderStatus(StrEnum):
    """Execution's order state machine (services/execution/orders.py)."""

    PENDING = "PENDING"  # journaled, not yet sent
    SENT = "SENT"  # sent to the broker, no answer yet: outcome unknown until answered
    ACCEPTED = "ACCEPTED"  # broker gave an order number
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"  # broker refused it
    DENIED = "DENIED"  # risk (or execution's own checks) refused it; never reached a broker
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        return self in _OPEN


_OPEN = frozenset(
    {OrderStatus.PENDING, OrderStatus.SENT, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED}
)


class Market(StrEnum):
    KOSPI = "KOSPI"
    KOSDAQ = "KOSDAQ"
    KONEX = "KONEX"


class InstrumentKind(StrEnum):
    STOCK = "STOCK"
    ETF = "ETF"
    ETN = "ETN"


class MarketPhase(StrEnum):
    CLOSED = "CLOSED"
    PRE_OPEN = "PRE_OPEN"  # opening call auction 08:30-09:00
    CONTINUOUS = "CONTINUOUS"  # 09:00-15:20
    CLOSING_AUCTION = "CLOSING_AUCTION"  # 15:20-15:30
    VI = "VI"  # volatility interruption: 2-minute single-price auction for one symbol
    HALTED = "HALTED"  # trading halt for one symbol or the market
