"""Stable codes: one table for `qts-ctl` replies, one for order refusals.

Codes are part of the wire contract. Add new ones; never rename or reuse one, because operators
grep logs and dashboards for them.
"""

from __future__ import annotations

from typing import Final


class CtlCode:
    """Error codes of a CtlReply (circus style: one table, the CLI prints code and reason)."""

    OK: Final = "OK"
    BAD_REQUEST: Final = "BAD_REQUEST"  # the request did not decode or lacks an argument
    UNKNOWN_COMMAND: Final = "UNKNOWN_COMMAND"
    INVALID_TRANSITION: Final = "INVALID_TRANSITION"  # e.g. `reduce` while HALTED
    NOT_ACKNOWLEDGED: Final = "NOT_ACKNOWLEDGED"  # some service did not acknowledge in time
    TIMEOUT: Final = "TIMEOUT"  # the CLI heard no reply in time
    UNAVAILABLE: Final = "UNAVAILABLE"  # the service is not running / not reachable
    INTERNAL: Final = "INTERNAL"
    NOT_READY: Final = "NOT_READY"  # e.g. execution still reconciling


class Reason:
    """Reason codes of IntentDenied and OrderRejected. Docs: docs/risk.md."""

    # trading state and safety
    HALTED: Final = "HALTED"
    REDUCE_ONLY: Final = "REDUCE_ONLY"  # REDUCING and the order would not shrink a position
    FAILSAFE: Final = "FAILSAFE"  # no control message from the supervisor for too long
    NOT_READY: Final = "NOT_READY"  # execution has not finished reconciling
    STALE_INTENT: Final = "STALE_INTENT"  # older than the configured age
    DUPLICATE_INTENT: Final = "DUPLICATE_INTENT"  # this intent id already became an order
    # price and instrument rules
    TICK_SIZE: Final = "TICK_SIZE"
    PRICE_LIMIT: Final = "PRICE_LIMIT"  # outside the daily +-30% band
    PRICE_COLLAR: Final = "PRICE_COLLAR"  # too far from the last trade (fat finger)
    UNKNOWN_SYMBOL: Final = "UNKNOWN_SYMBOL"
    BAD_ORDER: Final = "BAD_ORDER"  # non-positive quantity, missing price, bad type
    # size and exposure
    MAX_ORDER_QTY: Final = "MAX_ORDER_QTY"
    MAX_ORDER_NOTIONAL: Final = "MAX_ORDER_NOTIONAL"
    MAX_POSITION: Final = "MAX_POSITION"
    MAX_OPEN_ORDERS: Final = "MAX_OPEN_ORDERS"
    INSUFFICIENT_HOLDINGS: Final = "INSUFFICIENT_HOLDINGS"  # no naked short selling
    INSUFFICIENT_CASH: Final = "INSUFFICIENT_CASH"
    # broker side
    BROKER_REJECT: Final = "BROKER_REJECT"
    BROKER_UNAVAILABLE: Final = "BROKER_UNAVAILABLE"
    # sent, never answered, and the broker has no such order: lost in transit or in a broker
    # crash (not a refusal by the broker, so it does not count towards the reject storm)
    NOT_AT_BROKER: Final = "NOT_AT_BROKER"
    HALT_CANCEL: Final = "HALT_CANCEL"  # cancelled because trading was halted
    SESSION_CLOSED: Final = "SESSION_CLOSED"
    # risk's pre-trade checks (docs/risk.md)
    SESSION_UNKNOWN: Final = "SESSION_UNKNOWN"  # no market phase seen yet (risk.require_phase)
    MARKET_HALTED: Final = "MARKET_HALTED"  # the exchange halted the market or this symbol
    VI_IN_EFFECT: Final = "VI_IN_EFFECT"  # volatility interruption: limit DAY orders only
    ORDER_TYPE: Final = "ORDER_TYPE"  # order type or time in force invalid in this phase
    MAX_GROSS_EXPOSURE: Final = "MAX_GROSS_EXPOSURE"
    MAX_NET_EXPOSURE: Final = "MAX_NET_EXPOSURE"
    MAX_ORDERS_PER_DAY: Final = "MAX_ORDERS_PER_DAY"
    MAX_CANCELS_PER_DAY: Final = "MAX_CANCELS_PER_DAY"
    THROTTLED: Final = "THROTTLED"  # above the account's submit rate (broker's limit)
    DUPLICATE_ORDER: Final = "DUPLICATE_ORDER"  # same order from the same strategy just now
    SELF_CROSS: Final = "SELF_CROSS"  # would trade against one's own open order
    DAILY_LOSS: Final = "DAILY_LOSS"  # the day's loss is beyond the limit: only shrinking orders
