"""Cash by settlement date and the orders that hold cash or shares back (pure).

A Korean cash account books a trade on the trade date, but the money moves at settlement (T+2
sessions, krx.md 5.3): the statement shows 예수금 (D+0, settled), D+1 and D+2 (what the deposit
will be once everything traded so far has settled). Brokers let a sale's proceeds buy shares the
same day (주문가능금액 counts them) but pay them out only once settled (출금가능금액).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from protocol.enums import Side
from protocol.messages import (
    ExecEvent,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)


class CashLadder:
    """Signed cash flows by trade date on top of the opening deposit. Settlement dates are
    worked out when asked, so a calendar that arrives late (it loads off the loop) still
    dates every trade correctly."""

    def __init__(self, initial: int) -> None:
        self.initial = initial
        self.flows: dict[dt.date, int] = {}

    def add(self, trade_date: dt.date, amount: int) -> None:
        self.flows[trade_date] = self.flows.get(trade_date, 0) + amount

    @property
    def projected(self) -> int:
        """The deposit once every trade so far has settled (D+2, trade-date basis)."""
        return self.initial + sum(self.flows.values())

    def settled_by(self, day: dt.date, settles: Callable[[dt.date], dt.date]) -> int:
        """The deposit on `day` after that day's settlements."""
        return self.initial + sum(v for d, v in self.flows.items() if settles(d) <= day)


@dataclass
class _Open:
    strategy: str
    symbol: str
    side: Side
    price: int  # 0 for a market order: the buyer reserves at the upper limit
    leaves: int
    day: dt.date  # KST trade date: DAY orders die at the close


class OpenOrders:
    """Working orders from the exec stream: what a buy reserves, what a sell holds back."""

    def __init__(self) -> None:
        self.orders: dict[str, _Open] = {}

    def apply(self, ev: ExecEvent, day: dt.date) -> bool:
        """Track one event; True if the set of working orders changed."""
        if isinstance(ev, OrderSubmitted):
            self.orders[ev.client_order_id] = _Open(
                ev.strategy, ev.symbol, ev.side, ev.price, ev.qty, day
            )
            return True
        if isinstance(ev, OrderFilled):
            o = self.orders.get(ev.client_order_id)
            if o is None:
                return False
            if ev.leaves_qty <= 0:
                del self.orders[ev.client_order_id]
            else:
                o.leaves = ev.leaves_qty
            return True
        if isinstance(ev, OrderRejected | OrderCanceled):
            return self.orders.pop(ev.client_order_id, None) is not None
        return False

    def live(self, today: dt.date) -> list[_Open]:
        """Orders of `today`: an earlier day's orders expired at its close even if the journal
        never said so (a crash before the broker's expiry notice), and are forgotten."""
        stale = [k for k, o in self.orders.items() if o.day < today]
        for k in stale:
            del self.orders[k]
        return list(self.orders.values())

    def held_for_sale(self, symbol: str, today: dt.date, strategy: str | None = None) -> int:
        return sum(
            o.leaves
            for o in self.live(today)
            if o.side is Side.SELL
            and o.symbol == symbol
            and (strategy is None or o.strategy == strategy)
        )
