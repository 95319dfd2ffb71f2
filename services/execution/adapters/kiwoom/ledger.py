"""The day's orders this adapter knows and the fills it told execution about, on disk so a
restarted execution process tells the same story.

Kiwoom gives every order its running totals: a 00 notice carries the order quantity (900)
and what is left (902), ka10076 the filled quantity (cntr_qty). So a fill is numbered by the
order's cumulative filled quantity after it (fill_no = 900 - 902): a notice and a query name
the same fill the same way, a repeated or late notice (cumulative not above what is known) is
no new fill, and notices lost while the WebSocket was down become one fill up to the total a
query shows. This needs neither reading of the UNCERTAIN 911 (cumulative or per fill).

Cancel needs the stock code and exchange of the order (kt10003), which execution does not
pass: they are kept here too. The file is append-only JSON lines, one per KST day and key; a
torn last line is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.enums import Side


@dataclass(frozen=True)
class LedgerFill:
    fill_no: int  # the order's cumulative filled quantity after this fill
    qty: int
    price: int
    ts_ns: int
    source: str  # "notice" or "query"


@dataclass
class OrderInfo:
    order_no: str
    symbol: str
    side: Side
    qty: int
    price: int
    exchange: str  # dmst_stex_tp the order went to ("" unknown: the configured one)
    trde_tp: str  # the order-type code we sent ("" unknown)
    ts_ns: int
    fills: list[LedgerFill] = field(default_factory=list)

    @property
    def filled(self) -> int:
        return self.fills[-1].fill_no if self.fills else 0

    @property
    def filled_amt(self) -> int:
        return sum(f.qty * f.price for f in self.fills)

    @property
    def leaves(self) -> int:
        return max(0, self.qty - self.filled)


class FillLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.orders: dict[str, OrderInfo] = {}
        self.skipped_lines = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._load()
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        if self._torn_tail():
            self.fh.write("\n")  # end a torn last line: the next record starts clean

    def close(self) -> None:
        self.fh.close()

    def add_order(
        self,
        order_no: str,
        symbol: str,
        side: Side,
        qty: int,
        price: int,
        exchange: str,
        trde_tp: str,
        ts_ns: int,
    ) -> OrderInfo:
        """Record an order (idempotent; fills in an exchange or type learned later)."""
        info = self.orders.get(order_no)
        if info is None:
            info = OrderInfo(order_no, symbol, side, qty, price, exchange, trde_tp, ts_ns)
            self.orders[order_no] = info
            self._append(
                {"k": "order", "o": order_no, "s": symbol, "d": side.value, "q": qty, "p": price,
                 "e": exchange, "y": trde_tp, "t": ts_ns}
            )  # fmt: skip
            return info
        if (exchange and not info.exchange) or (trde_tp and not info.trde_tp):
            info.exchange = info.exchange or exchange
            info.trde_tp = info.trde_tp or trde_tp
            self._append({"k": "meta", "o": order_no, "e": info.exchange, "y": info.trde_tp})
        if qty and not info.qty:
            info.qty = qty
            self._append({"k": "qty", "o": order_no, "q": qty})
        return info

    def fill_to(
        self,
        order_no: str,
        cum_qty: int,
        cum_amount: int,
        unit_qty: int,
        unit_price: int,
        fallback_price: int,
        ts_ns: int,
        source: str,
    ) -> LedgerFill | None:
        """The order is filled `cum_qty` in all (for `cum_amount` won when known, else 0):
        the fill not yet reported, numbered by cum_qty, or None. Its price: this fill's own
        (unit) price when it is exactly the missing quantity, else from the amounts, else
        fallback_price."""
        info = self.orders[order_no]
        missing = cum_qty - info.filled
        if missing <= 0:
            return None
        amount = cum_amount - info.filled_amt
        if unit_qty == missing and unit_price > 0:
            price = unit_price
        elif cum_amount > 0 and amount > 0:
            price = (2 * amount + missing) // (2 * missing)  # half up
        else:
            price = fallback_price
        fill = LedgerFill(cum_qty, missing, price, ts_ns, source)
        info.fills.append(fill)
        self._append(
            {"k": "fill", "o": order_no, "n": cum_qty, "q": missing, "p": price, "t": ts_ns,
             "x": source}
        )  # fmt: skip
        return fill

    # ------------------------------------------------------------------ file
    def _append(self, rec: dict[str, Any]) -> None:
        self.fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())  # fills are rare; a restart must not renumber them

    def _torn_tail(self) -> bool:
        with open(self.path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                self._replay(json.loads(line))
            except (ValueError, KeyError, TypeError):
                self.skipped_lines += 1  # a torn last line after a crash

    def _replay(self, rec: dict[str, Any]) -> None:
        kind, order_no = rec["k"], rec["o"]
        if kind == "order":
            self.orders[order_no] = OrderInfo(
                order_no, rec["s"], Side(rec["d"]), rec["q"], rec["p"], rec["e"], rec["y"],
                rec["t"],
            )  # fmt: skip
            return
        info = self.orders[order_no]
        if kind == "meta":
            info.exchange, info.trde_tp = rec["e"], rec["y"]
        elif kind == "qty":
            info.qty = rec["q"]
        elif kind == "fill":
            info.fills.append(LedgerFill(rec["n"], rec["q"], rec["p"], rec["t"], rec["x"]))
