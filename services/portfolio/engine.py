"""Positions, cash and PnL as a pure function of the execution journal's fills and the marks.

Costs are computed exactly as the paper venue charges them (services/venue/matching.py), to the
won: commission on every fill, sell tax on sales by the settlement date (T+2 weekdays, KST), so
`cash` here equals the venue's cash without ever asking it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from protocol.enums import InstrumentKind, Market, Side
from protocol.messages import ExecEvent, Instrument, OrderFilled, PortfolioSnapshot, Position
from services.runtime import krx

KST = ZoneInfo("Asia/Seoul")
ACCOUNT = ""  # the strategy name of the account-total rows


def settlement_date(exch_ns: int) -> dt.date:
    """T+2 weekdays from the KST trade date of the fill (as the venue settles)."""
    trade_date = dt.datetime.fromtimestamp(exch_ns / 1e9, KST).date()
    return krx.add_business_days(trade_date, 2)


class _Book:
    """One (strategy, symbol) holding. `cost` is signed: negative for a short (never expected on
    KRX cash accounts, but an oversell must not corrupt the arithmetic)."""

    __slots__ = ("cost", "fees", "qty", "realized", "taxes")

    def __init__(self) -> None:
        self.qty = 0
        self.cost = 0
        self.realized = 0
        self.fees = 0
        self.taxes = 0

    def fill(self, signed_qty: int, price: int) -> None:
        qty, d = self.qty, signed_qty
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
    def __init__(self, initial_cash: int, commission_bp: float) -> None:
        self.initial_cash = initial_cash
        self.commission_bp = commission_bp
        self.cash = initial_cash
        self.exec_seq = 0
        self.books: dict[tuple[str, str], _Book] = {}
        self.last: dict[str, int] = {}
        self._md_marked: set[str] = set()
        self.instruments: dict[str, tuple[Market, InstrumentKind]] = {}
        self._fill_ids: set[str] = set()
        self.fills = 0
        self.duplicates = 0

    # ------------------------------------------------------------------------------ input
    def on_instrument(self, msg: Instrument) -> None:
        self.instruments[msg.symbol] = (msg.market, msg.kind)

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
        if not isinstance(event, OrderFilled):
            return False
        if event.fill_id in self._fill_ids:
            self.duplicates += 1
            return False
        self._fill_ids.add(event.fill_id)
        self._book_fill(event)
        return True

    def _book_fill(self, f: OrderFilled) -> None:
        notional = f.qty * f.price
        fee = krx.commission(notional, self.commission_bp)
        tax = 0
        if f.side is Side.SELL:
            market, kind = self.instruments.get(f.symbol, (Market.KOSPI, InstrumentKind.STOCK))
            tax = krx.sell_tax(notional, market, settlement_date(f.exch_ns), kind)
            self.cash += notional - fee - tax
            signed = -f.qty
        else:
            self.cash -= notional + fee
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
        realized = unrealized = fees = taxes = 0
        for (s, symbol), b in self.books.items():
            if s != strategy:
                continue
            realized += b.realized
            unrealized += b.qty * self._mark(symbol) - b.cost
            fees += b.fees
            taxes += b.taxes
        return {
            "realized": realized,
            "unrealized": unrealized,
            "fees": fees,
            "taxes": taxes,
            "net": realized + unrealized - fees - taxes,
        }

    def equity(self) -> int:
        return self.cash + sum(
            b.qty * self._mark(sym) for (s, sym), b in self.books.items() if s == ACCOUNT
        )

    def strategies(self) -> list[str]:
        return sorted({s for s, _ in self.books if s != ACCOUNT})

    def pnl(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.totals())
        out.update(cash=self.cash, equity=self.equity(), initial_cash=self.initial_cash)
        out["by_strategy"] = {s: self.totals(s) for s in self.strategies()}
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
