"""What this adapter knows about the day's orders and told execution about their fills, on
disk so that a restarted execution process tells the same story.

KIS gives no fill id: an execution notice carries one fill's quantity and price, and the
order query (inquire-daily-ccld) only an order's running totals. So a fill is numbered by the
order's filled quantity after it (fill_no = cumulative quantity): the same fill gets the same
number from a notice and from a query. When the query shows more filled than the notices
told (notices lost while the WebSocket was down), the difference becomes one fill numbered by
the new total, priced from the amounts; its quantity stays "unconfirmed" until notices that
happened before the query (by their KST fill time) arrive late and are absorbed into it
instead of being counted again.

The file is append-only JSON lines, one per day and key; a torn last line is ignored.
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
    fill_no: int  # the order's filled quantity after this fill
    qty: int
    price: int
    ts_ns: int
    synthetic: bool


@dataclass
class OrderInfo:
    order_no: str
    symbol: str
    side: Side
    qty: int
    price: int
    branch: str  # KRX_FWDG_ORD_ORGNO, needed to cancel
    ts_ns: int
    fills: list[LedgerFill] = field(default_factory=list)
    unconfirmed: int = 0  # synthetic quantity no notice has confirmed yet
    covers_until: str = ""  # KST HHMMSS of the query that made the synthetic fill

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

    def close(self) -> None:
        self.fh.close()

    # ------------------------------------------------------------------ orders
    def add_order(
        self, order_no: str, symbol: str, side: Side, qty: int, price: int, branch: str, ts_ns: int
    ) -> OrderInfo:
        info = self.orders.get(order_no)
        if info is None:
            info = OrderInfo(order_no, symbol, side, qty, price, branch, ts_ns)
            self.orders[order_no] = info
            self._append(
                {"k": "order", "o": order_no, "s": symbol, "d": side.value, "q": qty, "p": price,
                 "b": branch, "t": ts_ns}
            )  # fmt: skip
        elif branch and not info.branch:
            info.branch = branch
            self._append({"k": "branch", "o": order_no, "b": branch})
        return info

    # ------------------------------------------------------------------ fills
    def notice_fill(
        self, order_no: str, qty: int, price: int, ts_ns: int, hhmmss: str
    ) -> tuple[LedgerFill | None, bool]:
        """A fill notice -> (the fill to report or None if a query already reported it,
        whether that was ambiguous: the notice is from the same KST second as the query, so
        it may be a new fill; the caller then asks for a reconcile, which finds it if so)."""
        info = self.orders[order_no]
        ambiguous = False
        if info.unconfirmed and hhmmss and hhmmss <= info.covers_until:
            ambiguous = hhmmss == info.covers_until
            take = min(qty, info.unconfirmed)
            info.unconfirmed -= take
            self._append({"k": "absorb", "o": order_no, "q": take})
            qty -= take
            if qty == 0:
                return None, ambiguous
        fill = LedgerFill(info.filled + qty, qty, price, ts_ns, False)
        info.fills.append(fill)
        self._append_fill(order_no, fill)
        return fill, ambiguous

    def query_total(
        self, order_no: str, filled_qty: int, filled_amt: int, ts_ns: int, as_of: str
    ) -> LedgerFill | None:
        """The broker says `filled_qty` are filled for `filled_amt` won: the fill the notices
        missed, if any (recorded, numbered by the new total)."""
        info = self.orders[order_no]
        missing = filled_qty - info.filled
        if missing <= 0:
            return None
        amount = filled_amt - info.filled_amt
        price = (2 * amount + missing) // (2 * missing) if amount > 0 else 0  # half up
        fill = LedgerFill(filled_qty, missing, price, ts_ns, True)
        info.fills.append(fill)
        info.unconfirmed += missing
        info.covers_until = max(info.covers_until, as_of)
        self._append_fill(order_no, fill, as_of)
        return fill

    # ------------------------------------------------------------------ file
    def _append_fill(self, order_no: str, fill: LedgerFill, as_of: str = "") -> None:
        self._append(
            {"k": "fill", "o": order_no, "n": fill.fill_no, "q": fill.qty, "p": fill.price,
             "t": fill.ts_ns, "x": fill.synthetic, "a": as_of}
        )  # fmt: skip

    def _append(self, rec: dict[str, Any]) -> None:
        self.fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())  # fills are rare; a restart must not renumber them

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                rec = json.loads(line)
                self._replay(rec)
            except (ValueError, KeyError, TypeError):
                self.skipped_lines += 1  # a torn last line after a crash

    def _replay(self, rec: dict[str, Any]) -> None:
        kind, order_no = rec["k"], rec["o"]
        if kind == "order":
            self.orders[order_no] = OrderInfo(
                order_no, rec["s"], Side(rec["d"]), rec["q"], rec["p"], rec["b"], rec["t"]
            )
            return
        info = self.orders[order_no]
        if kind == "branch":
            info.branch = rec["b"]
        elif kind == "fill":
            info.fills.append(LedgerFill(rec["n"], rec["q"], rec["p"], rec["t"], rec["x"]))
            if rec["x"]:
                info.unconfirmed += rec["q"]
                info.covers_until = max(info.covers_until, rec["a"])
        elif kind == "absorb":
            info.unconfirmed -= rec["q"]
