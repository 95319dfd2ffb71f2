"""The venue's books on disk (SQLite, WAL): cash, holdings, orders, fills and counters.

Every change is committed in one transaction before the venue answers or notifies, so a venue
restarted at any moment knows every order number it ever gave, every fill it ever reported and
the account those fills produced; open orders come back and keep resting. A resting order's
queue position is saved with the order's own changes, not on every print that shortens it: after
a restart it may stand further back than before, never further ahead.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import msgspec

from protocol import codec
from protocol.enums import MarketPhase, OrderType, Side, TimeInForce
from protocol.messages import Instrument
from services.venue.matching import OPEN, VFill, VOrder

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS holdings (symbol TEXT PRIMARY KEY, qty INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
  order_no TEXT PRIMARY KEY, symbol TEXT NOT NULL, side TEXT NOT NULL, qty INTEGER NOT NULL,
  price INTEGER NOT NULL, order_type TEXT NOT NULL, tif TEXT NOT NULL, ts_ns INTEGER NOT NULL,
  filled INTEGER NOT NULL, status TEXT NOT NULL, queue_ahead INTEGER NOT NULL,
  fills INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS orders_open ON orders (status) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS orders_ts ON orders (ts_ns);
CREATE TABLE IF NOT EXISTS fills (
  order_no TEXT NOT NULL, fill_no INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
  qty INTEGER NOT NULL, price INTEGER NOT NULL, ts_ns INTEGER NOT NULL,
  commission INTEGER NOT NULL DEFAULT 0, tax INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (order_no, fill_no));
CREATE INDEX IF NOT EXISTS fills_ts ON fills (ts_ns);
CREATE TABLE IF NOT EXISTS instruments (symbol TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS phases (scope TEXT PRIMARY KEY, phase TEXT NOT NULL);
"""

# columns added after the first version of this file, for venue.db files made by it
_ADDED_COLUMNS = {
    "orders": {"reason": "TEXT NOT NULL DEFAULT ''"},
    "fills": {"commission": "INTEGER NOT NULL DEFAULT 0", "tax": "INTEGER NOT NULL DEFAULT 0"},
}

_ORDER_COLUMNS = (
    "order_no, symbol, side, qty, price, order_type, tif, ts_ns, filled, status, queue_ahead, "
    "fills, reason"
)


@dataclass(slots=True, frozen=True)
class Loaded:
    cash: int
    holdings: dict[str, int]
    next_no: int
    notice_seq: int
    open_orders: list[VOrder]
    instruments: list[Instrument]
    # the last phases seen: "" -> the market's, a symbol -> its own VI or halt (empty: none yet)
    phases: dict[str, MarketPhase]


@dataclass(slots=True, frozen=True)
class FillRow:
    order_no: str
    fill_no: int
    symbol: str
    side: Side
    qty: int
    price: int
    ts_ns: int
    commission: int
    tax: int


def _order(row: tuple) -> VOrder:  # type: ignore[type-arg]
    return VOrder(
        order_no=row[0],
        symbol=row[1],
        side=Side(row[2]),
        qty=row[3],
        price=row[4],
        order_type=OrderType(row[5]),
        tif=TimeInForce(row[6]),
        ts_ns=row[7],
        filled=row[8],
        status=row[9],
        queue_ahead=row[10],
        fills=row[11],
        reason=row[12],
    )


class VenueStore:
    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL"):
            raise ValueError(f"synchronous must be OFF, NORMAL or FULL, not {synchronous!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (the chaos test's SIGKILL); FULL also
        # survives a power cut, at an fsync per commit
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(SCHEMA)
        for table, columns in _ADDED_COLUMNS.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns.items():
                if name not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def close(self) -> None:
        self.db.close()

    def load(self, initial_cash: int) -> Loaded:
        """The account on disk, or a new one holding `initial_cash` on first creation."""
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if "cash" not in meta:
            meta = {"cash": initial_cash, "next_no": 1, "notice_seq": 0}
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
        holdings = dict(self.db.execute("SELECT symbol, qty FROM holdings WHERE qty != 0"))
        open_orders = [
            _order(r)
            for r in self.db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status = ? ORDER BY order_no", (OPEN,)
            )
        ]
        decode = msgspec.msgpack.Decoder(Instrument).decode
        return Loaded(
            cash=int(meta["cash"]),
            holdings=holdings,
            next_no=int(meta["next_no"]),
            notice_seq=int(meta["notice_seq"]),
            open_orders=open_orders,
            instruments=[decode(r[0]) for r in self.db.execute("SELECT data FROM instruments")],
            phases={
                scope: MarketPhase(phase)
                for scope, phase in self.db.execute("SELECT scope, phase FROM phases")
            },
        )

    def save_instrument(self, inst: Instrument) -> None:
        """The latest reference data of a symbol, so a restarted venue knows its symbols, price
        bands and tax class at once (a broker does not forget them when it restarts)."""
        self.db.execute(
            "INSERT OR REPLACE INTO instruments VALUES (?, ?)", (inst.symbol, codec.encode(inst))
        )

    def commit(
        self,
        *,
        cash: int,
        holdings: dict[str, int],
        next_no: int,
        notice_seq: int,
        orders: list[VOrder],
        fills: list[VFill],
        phases: dict[str, MarketPhase] | None = None,
    ) -> None:
        """Write one change in one transaction: the account, the orders it touched (as they
        are now), the new fills and, when given, the phases as they are now (replacing the old
        ones: an uncross and the phase that caused it land together). Holdings are written for
        the symbols of those orders."""
        touched = {id(o): o for o in [*orders, *(f.order for f in fills)]}.values()
        symbols = {o.symbol for o in touched}
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("cash", cash), ("next_no", next_no), ("notice_seq", notice_seq)],
            )
            db.executemany(
                "INSERT OR REPLACE INTO holdings VALUES (?, ?)",
                [(s, holdings.get(s, 0)) for s in symbols],
            )
            db.executemany(
                f"INSERT OR REPLACE INTO orders ({_ORDER_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                        o.reason,
                    )
                    for o in touched
                ],
            )
            db.executemany(
                "INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        f.order.order_no,
                        f.fill_no,
                        f.order.symbol,
                        f.order.side.value,
                        f.qty,
                        f.price,
                        f.ts_ns,
                        f.commission,
                        f.tax,
                    )
                    for f in fills
                ],
            )
            if phases is not None:
                self._write_phases(phases)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def save_phases(self, phases: dict[str, MarketPhase]) -> None:
        """The phases as they are now ("" the market's, symbols their own VI or halt)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._write_phases(phases)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _write_phases(self, phases: dict[str, MarketPhase]) -> None:
        self.db.execute("DELETE FROM phases")
        self.db.executemany(
            "INSERT INTO phases VALUES (?, ?)", [(k, p.value) for k, p in sorted(phases.items())]
        )

    def order_status(self, order_no: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM orders WHERE order_no = ?", (order_no,)
        ).fetchone()
        return row[0] if row else None

    def orders(self, *, open_only: bool = False, since_ns: int | None = None) -> list[VOrder]:
        """Orders by number. since_ns: those placed since then, plus any still open."""
        sql = f"SELECT {_ORDER_COLUMNS} FROM orders"
        params: tuple[object, ...] = ()
        if open_only:
            sql += " WHERE status = ?"
            params = (OPEN,)
        elif since_ns is not None:
            sql += " WHERE ts_ns >= ? OR status = ?"
            params = (since_ns, OPEN)
        return [_order(r) for r in self.db.execute(sql + " ORDER BY order_no", params)]

    def fills(self, *, since_ns: int | None = None) -> list[FillRow]:
        sql = (
            "SELECT order_no, fill_no, symbol, side, qty, price, ts_ns, commission, tax FROM fills"
        )
        params: tuple[object, ...] = ()
        if since_ns is not None:
            sql += " WHERE ts_ns >= ?"
            params = (since_ns,)
        rows = self.db.execute(sql + " ORDER BY ts_ns, order_no, fill_no", params)
        return [FillRow(r[0], r[1], r[2], Side(r[3]), *r[4:]) for r in rows]
