"""Positions, cash and PnL as a pure function of the execution journal and the marks.

Booked the way a Korean broker statement books a cash-equity trade (docs/portfolio.md):
- commission on every fill, by the broker's schedule, truncated per fill (krx.FeeSchedule);
- on sales, the securities transaction tax and the rural special tax at the rate of the year the
  sale settles in (T+2 sessions on the KRX calendar), each truncated to the won;
- average price by the moving-average method (이동평균법), commission not included: a buy
  re-averages, a sale leaves the average as it is and realises (price - average) x qty;
- realised PnL is gross of costs; fees and taxes are their own columns; net = realised +
  unrealised - fees - taxes, unrealised marked to the last trade.
The paper venue charges the same functions (services/venue/matching.py), so `cash` here equals
the venue's cash without asking it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from protocol.enums import InstrumentKind, Market, Side
from protocol.messages import ExecEvent, Instrument, OrderFilled, PortfolioSnapshot, Position
from services.portfolio.cash import CashLadder, OpenOrders
from services.runtime import krx

KST = ZoneInfo("Asia/Seoul")
ACCOUNT = ""  # the strategy name of the account-total rows


def kst_date(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns / 1e9, KST).date()


def settlement_date(exch_ns: int, calendar: krx.SessionCalendar | None = None) -> dt.date:
    """T+2 from the KST trade date of the fill: KRX sessions with a calendar, else
    krx.add_business_days (the venue's rule; same year, so the same tax, either way)."""
    return krx.settlement_date(kst_date(exch_ns), calendar)


class _Book:
    """One (strategy, symbol) holding. `cost` is signed: negative for a short (never expected on
    KRX cash accounts, but an oversell must not corrupt the arithmetic)."""

    __slots__ = ("bought", "cost", "fees", "qty", "realized", "sold", "taxes")

    def __init__(self) -> None:
        self.qty = 0
        self.cost = 0
        self.realized = 0
        self.fees = 0
        self.taxes = 0
        self.bought = 0  # notional
        self.sold = 0

    def fill(self, signed_qty: int, price: int) -> None:
        qty, d = self.qty, signed_qty
        if d > 0:
            self.bought += d * price
        else:
            self.sold += -d * price
        if qty == 0 or (qty > 0) == (d > 0):
            self.qty += d
            self.cost += d * price
            return
        close = min(abs(d), abs(qty))
        if qty > 0:
            # moving average: remove cost pro rata, truncated; the remainder stays with the rest
            removed = self.cost * close // qty
            self.realized += close * price - removed
            self.cost -= removed
        else:
            removed = (-self.cost) * close // (-qty)
            self.realized += removed - close * price
            self.cost += removed
        self.qty += close if d > 0 else -close
        rest = abs(d) - close
        if rest:  # flipped through zero: the rest opens the other side at this price
            signed_rest = rest if d > 0 else -rest
            self.qty += signed_rest
            self.cost += signed_rest * price
        if self.qty == 0:
            self.cost = 0


class PortfolioEngine:
    def __init__(
        self,
        initial_cash: int,
        fees: krx.FeeSchedule | float = 1.5,
        calendar: krx.SessionCalendar | None = None,
    ) -> None:
        if initial_cash < 0:
            raise ValueError(f"initial cash must be >= 0, got {initial_cash}")
        if not isinstance(fees, krx.FeeSchedule):
            fees = krx.FeeSchedule(stock_bp=fees, etf_bp=fees)
        self.initial_cash = initial_cash
        self.fees = fees
        self.calendar = calendar
        self.ladder = CashLadder(initial_cash)
        self.open_orders = OpenOrders()
        self.exec_seq = 0
        self.books: dict[tuple[str, str], _Book] = {}
        self.last: dict[str, int] = {}
        self._md_marked: set[str] = set()
        self.instruments: dict[str, Instrument] = {}
        self._fill_ids: set[str] = set()
        self.fills = 0
        self.duplicates = 0

    @property
    def cash(self) -> int:
        """Trade-date cash: the D+2 deposit once everything traded so far has settled."""
        return self.ladder.projected

    # ------------------------------------------------------------------------------ input
    def on_instrument(self, msg: Instrument) -> None:
        self.instruments[msg.symbol] = msg

    def _market_kind(self, symbol: str) -> tuple[Market, InstrumentKind]:
        inst = self.instruments.get(symbol)
        return (inst.market, inst.kind) if inst else (Market.KOSPI, InstrumentKind.STOCK)

    def on_trade(self, symbol: str, price: int) -> bool:
        """Mark a symbol; True if that changes a valuation (a position is held in it)."""
        if self.last.get(symbol) == price and symbol in self._md_marked:
            return False
        self.last[symbol] = price
        self._md_marked.add(symbol)
        book = self.books.get((ACCOUNT, symbol))
        return book is not None and book.qty != 0

    def apply(self, event: ExecEvent) -> bool:
        """Apply one journal event; True if the book changed. Idempotent by seq and fill_id."""
        seq = event.seq
        if seq and seq <= self.exec_seq:
            self.duplicates += 1
            return False
        if seq:
            self.exec_seq = seq
        if isinstance(event, OrderFilled) and event.fill_id in self._fill_ids:
            self.duplicates += 1
            return False
        self.open_orders.apply(event, kst_date(event.ts_ns))
        if not isinstance(event, OrderFilled):
            return False
        self._fill_ids.add(event.fill_id)
        self._book_fill(event)
        return True

    def fill_costs(self, f: OrderFilled) -> tuple[int, int, dt.date]:
        """(commission, taxes, settlement date) of one fill, to the won."""
        notional = f.qty * f.price
        market, kind = self._market_kind(f.symbol)
        settles = settlement_date(f.exch_ns, self.calendar)
        fee = self.fees.commission(notional, kind)
        tax = krx.sell_tax(notional, market, settles, kind) if f.side is Side.SELL else 0
        return fee, tax, settles

    def _book_fill(self, f: OrderFilled) -> None:
        notional = f.qty * f.price
        fee, tax, _ = self.fill_costs(f)
        trade_date = kst_date(f.exch_ns)
        if f.side is Side.SELL:
            self.ladder.add(trade_date, notional - fee - tax)
            signed = -f.qty
        else:
            self.ladder.add(trade_date, -notional - fee)
            signed = f.qty
        for key in ((f.strategy, f.symbol), (ACCOUNT, f.symbol)):
            book = self.books.get(key)
            if book is None:
                book = self.books[key] = _Book()
            book.fill(signed, f.price)
            book.fees += fee
            book.taxes += tax
        if f.symbol not in self._md_marked:  # until md speaks, the latest fill is the mark
            self.last[f.symbol] = f.price
        self.fills += 1

    # ------------------------------------------------------------------------------ output
    def _mark(self, symbol: str) -> int:
        return self.last.get(symbol, 0)

    def positions(self) -> list[Position]:
        out = []
        for (strategy, symbol), b in sorted(self.books.items()):
            last = self._mark(symbol)
            out.append(
                Position(
                    strategy=strategy,
                    symbol=symbol,
                    qty=b.qty,
                    cost=b.cost,
                    last_price=last,
                    realized=b.realized,
                    unrealized=b.qty * last - b.cost,
                    fees=b.fees,
                    taxes=b.taxes,
                )
            )
        return out

    def totals(self, strategy: str = ACCOUNT) -> dict[str, int]:
        realized = unrealized = fees = taxes = bought = sold = 0
        for (s, symbol), b in self.books.items():
            if s != strategy:
                continue
            realized += b.realized
            unrealized += b.qty * self._mark(symbol) - b.cost
            fees += b.fees
            taxes += b.taxes
            bought += b.bought
            sold += b.sold
        return {
            "realized": realized,
            "unrealized": unrealized,
            "gross": realized + unrealized,
            "fees": fees,
            "taxes": taxes,
            "costs": fees + taxes,
            "net": realized + unrealized - fees - taxes,
            "bought": bought,
            "sold": sold,
        }

    def market_value(self) -> int:
        return sum(b.qty * self._mark(sym) for (s, sym), b in self.books.items() if s == ACCOUNT)

    def equity(self) -> int:
        return self.cash + self.market_value()

    def strategies(self) -> list[str]:
        return sorted({s for s, _ in self.books if s != ACCOUNT})

    def _reserve_price(self, symbol: str, price: int) -> int:
        if price:
            return price
        inst = self.instruments.get(symbol)  # a market buy reserves at the upper limit
        return inst.upper_limit if inst else self._mark(symbol)

    def reserved(self, today: dt.date) -> int:
        """Cash held back by working buy orders of `today`: price x leaves + commission."""
        total = 0
        for o in self.open_orders.live(today):
            if o.side is Side.BUY:
                notional = self._reserve_price(o.symbol, o.price) * o.leaves
                total += notional + self.fees.commission(notional, self._market_kind(o.symbol)[1])
        return total

    def _session_after(self, today: dt.date, n: int) -> dt.date:
        if n == 0:
            return today
        if self.calendar is not None:
            try:
                return self.calendar.add_sessions(today, n)
            except ValueError:
                pass
        return krx.add_business_days(today, n)

    def _settles(self, trade_date: dt.date) -> dt.date:
        return krx.settlement_date(trade_date, self.calendar)

    def balance(self, today: dt.date) -> dict[str, int]:
        """The deposit as a statement shows it on `today`.
        d0/d1/d2: the deposit after today's / the next session's / the one after's settlements;
        buying_power (주문가능금액): d2 less what working buys reserve (today's sale proceeds
        buy at once); withdrawable (출금가능금액): the lowest of d0..d2 less the same."""
        settles = self._settles
        ladder = [self.ladder.settled_by(self._session_after(today, n), settles) for n in range(3)]
        d2 = ladder[2]
        reserved = self.reserved(today)
        return {
            "d0": ladder[0],
            "d1": ladder[1],
            "d2": d2,
            "reserved": reserved,
            "buying_power": max(d2 - reserved, 0),
            "withdrawable": max(min(ladder[0], ladder[1], d2) - reserved, 0),
        }

    def position_rows(self, today: dt.date) -> list[dict[str, Any]]:
        """positions() plus what a statement adds: average price and sellable quantity."""
        rows = []
        for p in self.positions():
            strategy = None if p.strategy == ACCOUNT else p.strategy
            held = self.open_orders.held_for_sale(p.symbol, today, strategy)
            rows.append(
                {
                    "strategy": p.strategy,
                    "symbol": p.symbol,
                    "qty": p.qty,
                    "avg_price": p.cost // p.qty if p.qty > 0 else 0,
                    "cost": p.cost,
                    "last_price": p.last_price,
                    "market_value": p.qty * p.last_price,
                    "unrealized": p.unrealized,
                    "realized": p.realized,
                    "fees": p.fees,
                    "taxes": p.taxes,
                    "sellable": max(p.qty - held, 0),
                }
            )
        return rows

    def pnl(self, today: dt.date | None = None) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.totals())
        out.update(cash=self.cash, equity=self.equity(), initial_cash=self.initial_cash)
        if today is not None:
            out["balance"] = self.balance(today)
        out["by_strategy"] = {s: self.totals(s) for s in self.strategies()}
        out["by_symbol"] = {
            p.symbol: {
                "realized": p.realized,
                "unrealized": p.unrealized,
                "costs": p.fees + p.taxes,
                "net": p.realized + p.unrealized - p.fees - p.taxes,
            }
            for p in self.positions()
            if p.strategy == ACCOUNT
        }
        return out

    def snapshot(self, seq: int, ts_ns: int) -> PortfolioSnapshot:
        t = self.totals()
        return PortfolioSnapshot(
            seq=seq,
            ts_ns=ts_ns,
            exec_seq=self.exec_seq,
            cash=self.cash,
            equity=self.equity(),
            realized=t["realized"],
            unrealized=t["unrealized"],
            fees=t["fees"],
            taxes=t["taxes"],
            positions=self.positions(),
        )
