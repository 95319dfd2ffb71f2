"""The venue's book on disk (SQLite, WAL): cash, holdings, orders, fills, counters.

Every change is committed before the venue answers or notifies, so a venue restarted at any
moment knows every order number it ever gave and every fill it ever reported.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from protocol.enums import OrderType, Side, TimeInForce
from services.venue.matching import Venue, VFill, VOrder

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS holdings (symbol TEXT PRIMARY KEY, qty INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
  order_no TEXT PRIMARY KEY, symbol TEXT NOT NULL, side TEXT NOT NULL, qty INTEGER NOT NULL,
  price INTEGER NOT NULL, order_type TEXT NOT NULL, tif TEXT NOT NULL, ts_ns INTEGER NOT NULL,
  filled INTEGER NOT NULL, status TEXT NOT NULL, queue_ahead INTEGER NOT NULL,
  fills INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fills (
  order_no TEXT NOT NULL, fill_no INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
  qty INTEGER NOT NULL, price INTEGER NOT NULL, ts_ns INTEGER NOT NULL,
  PRIMARY KEY (order_no, fill_no));
"""


class VenueStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def load(self, venue: Venue, initial_cash: int) -> int:
        """Fill `venue` from disk (or start a new account); returns the notice seq."""
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if "cash" not in meta:
            self.db.execute(
                "INSERT INTO meta VALUES ('cash', ?), ('next_no', 1), ('notice_seq', 0)",
                (initial_cash,),
            )
            meta = {"cash": initial_cash, "next_no": 1, "notice_seq": 0}
        venue.cash = meta["cash"]
        venue.next_no = meta["next_no"]
        venue.holdings = dict(self.db.execute("SELECT symbol, qty FROM holdings").fetchall())
        for row in self.db.execute(
            "SELECT order_no, symbol, side, qty, price, order_type, tif, "
            "ts_ns, filled, status, queue_ahead, fills FROM orders "
            "WHERE status = 'open'"
        ):
            order = VOrder(
                row[0],
                row[1],
                Side(row[2]),
                row[3],
                row[4],
                OrderType(row[5]),
                TimeInForce(row[6]),
                row[7],
                row[8],
                row[9],
                row[10],
                row[11],
            )
            venue.open[order.order_no] = order
        return int(meta["notice_seq"])

    def save(self, venue: Venue, orders: list[VOrder], fills: list[VFill], notice_seq: int) -> None:
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("cash", venue.cash), ("next_no", venue.next_no), ("notice_seq", notice_seq)],
            )
            touched = {o.symbol for o in orders} | {f.order.symbol for f in fills}
            db.executemany(
                "INSERT OR REPLACE INTO holdings VALUES (?, ?)",
                [(s, venue.holdings.get(s, 0)) for s in touched],
            )
            db.executemany(
                "INSERT OR REPLACE INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        o.order_no,
                        o.symbol,
                        o.side.value,
                        o.qty,
                        o.price,
                        o.order_type.value,
                        o.tif.value,
                        o.ts_ns,
                        o.filled,
                        o.status,
                        o.queue_ahead,
                        o.fills,
                    )
                    for o in {id(o): o for o in [*orders, *(f.order for f in fills)]}.values()
                ],
            )
            db.executemany(
                "INSERT INTO fills VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        f.order.order_no,
                        f.fill_no,
                        f.order.symbol,
                        f.order.side.value,
                        f.qty,
                        f.price,
                        f.ts_ns,
                    )
                    for f in fills
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def order_status(self, order_no: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM orders WHERE order_no = ?", (order_no,)
        ).fetchone()
        return row[0] if row else None

    def orders(self, open_only: bool = False) -> list[tuple]:  # type: ignore[type-arg]
        sql = (
            "SELECT order_no, symbol, side, qty, price, order_type, tif, filled, status, "
            "ts_ns FROM orders"
        )
        if open_only:
            sql += " WHERE status = 'open'"
        return self.db.execute(sql + " ORDER BY order_no").fetchall()

    def fills(self) -> list[tuple]:  # type: ignore[type-arg]
        return self.db.execute(
            "SELECT order_no, fill_no, symbol, side, qty, price, ts_ns "
            "FROM fills ORDER BY ts_ns, order_no, fill_no"
        ).fetchall()
