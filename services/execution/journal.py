"""The order journal: SQLite in WAL mode, the source of truth for orders, fills and events.

- An order row is committed (PENDING) before the order is sent, then marked SENT ("outcome
  unknown until the broker answers"), so a crash between send and answer leaves a row to
  reconcile, never a forgotten order.
- client_order_id is the primary key: a resent intent (same id) can never become a second row.
- fill_id is the primary key of fills: a replayed fill never counts twice.
- Every execution event is a row of `events` written in the same transaction as the change it
  reports; its rowid is the event's `seq`, increasing across restarts, so subscribers recover
  with events_since(seq).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from protocol import codec
from protocol.enums import OrderStatus, Side
from protocol.messages import (
    ExecEvent,
    IntentDenied,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    SubmitOrder,
    Trace,
)
from services.execution import orders as sm
from services.runtime import ids

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
  client_order_id TEXT PRIMARY KEY, intent_id TEXT UNIQUE, strategy TEXT NOT NULL,
  symbol TEXT NOT NULL, side TEXT NOT NULL, qty INTEGER NOT NULL, price INTEGER NOT NULL,
  order_type TEXT NOT NULL, tif TEXT NOT NULL, status TEXT NOT NULL, broker_order_no TEXT,
  filled_qty INTEGER NOT NULL DEFAULT 0, filled_notional INTEGER NOT NULL DEFAULT 0,
  code TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',
  created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS orders_broker_no ON orders (broker_order_no);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);
CREATE TABLE IF NOT EXISTS fills (
  fill_id TEXT PRIMARY KEY, client_order_id TEXT NOT NULL, broker_order_no TEXT NOT NULL,
  strategy TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty INTEGER NOT NULL,
  price INTEGER NOT NULL, exch_ns INTEGER NOT NULL, ts_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS baseline (day TEXT PRIMARY KEY, holdings TEXT NOT NULL);
"""

ORDER_COLUMNS = (
    "client_order_id",
    "intent_id",
    "strategy",
    "symbol",
    "side",
    "qty",
    "price",
    "order_type",
    "tif",
    "status",
    "broker_order_no",
    "filled_qty",
    "filled_notional",
    "code",
    "reason",
    "created_ns",
    "updated_ns",
)
FILL_COLUMNS = (
    "fill_id",
    "client_order_id",
    "broker_order_no",
    "strategy",
    "symbol",
    "side",
    "qty",
    "price",
    "exch_ns",
    "ts_ns",
)
OPEN = tuple(s.value for s in OrderStatus if s.is_open)


class Journal:
    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(SCHEMA)
        self._decode = codec.decoder("exec").decode

    # ------------------------------------------------------------------ transactions
    def _tx(self) -> _Tx:
        return _Tx(self.db)

    def _append(self, event: Any) -> Any:
        """Insert the event, set its seq from the rowid. Call inside a transaction."""
        cur = self.db.execute("INSERT INTO events (payload) VALUES (x'')")
        seq = cur.lastrowid
        assert seq is not None
        event = msgspec.structs.replace(event, seq=seq)
        self.db.execute("UPDATE events SET payload = ? WHERE seq = ?", (codec.encode(event), seq))
        return event

    def _set_status(self, coid: str, new: OrderStatus, now_ns: int, **extra: Any) -> None:
        row = self.db.execute(
            "SELECT status FROM orders WHERE client_order_id = ?", (coid,)
        ).fetchone()
        if row is None:
            raise sm.IllegalTransition(f"unknown order {coid}")
        sm.check(OrderStatus(row[0]), new)
        sets = ", ".join(f"{k} = ?" for k in extra)
        self.db.execute(
            f"UPDATE orders SET status = ?, updated_ns = ?{', ' + sets if sets else ''} "
            "WHERE client_order_id = ?",
            (new.value, now_ns, *extra.values(), coid),
        )

    # ------------------------------------------------------------------ writes
    def has_order(self, coid: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM orders WHERE client_order_id = ?", (coid,)).fetchone()
            is not None
        )

    def record_pending(self, o: SubmitOrder, now_ns: int) -> OrderSubmitted:
        """The order row (PENDING) and its OrderSubmitted, committed before the send."""
        with self._tx():
            self.db.execute(
                "INSERT INTO orders (client_order_id, intent_id, strategy, symbol, side, qty, "
                "price, order_type, tif, status, created_ns, updated_ns) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    o.client_order_id,
                    o.intent_id,
                    o.strategy,
                    o.symbol,
                    o.side.value,
                    o.qty,
                    o.price,
                    o.order_type.value,
                    o.tif.value,
                    OrderStatus.PENDING.value,
                    now_ns,
                    now_ns,
                ),
            )
            return self._append(
                OrderSubmitted(
                    seq=0,
                    client_order_id=o.client_order_id,
                    intent_id=o.intent_id,
                    strategy=o.strategy,
                    symbol=o.symbol,
                    side=o.side,
                    qty=o.qty,
                    price=o.price,
                    order_type=o.order_type,
                    ts_ns=now_ns,
                    trace=o.trace,
                )
            )

    def mark_sent(self, coid: str, now_ns: int) -> None:
        """Handed to the broker: from now on the outcome is unknown until it answers."""
        with self._tx():
            self._set_status(coid, OrderStatus.SENT, now_ns)

    def record_denied(self, d: IntentDenied, now_ns: int) -> IntentDenied | None:
        """Journal a refusal; None if this intent already has a row (never overwrite one)."""
        coid = ids.client_order_id(d.intent_id)
        with self._tx():
            cur = self.db.execute(
                "INSERT OR IGNORE INTO orders (client_order_id, intent_id, strategy, symbol, "
                "side, qty, price, order_type, tif, status, code, reason, created_ns, "
                "updated_ns) VALUES (?,?,?,?,?,?,?,'LIMIT','DAY',?,?,?,?,?)",
                (
                    coid,
                    d.intent_id,
                    d.strategy,
                    d.symbol,
                    d.side.value,
                    d.qty,
                    d.price,
                    OrderStatus.DENIED.value,
                    d.code,
                    d.reason,
                    now_ns,
                    now_ns,
                ),
            )
            if cur.rowcount == 0:
                return None
            return self._append(d)

    def record_accepted(self, coid: str, order_no: str, now_ns: int, trace: Trace) -> OrderAccepted:
        row = self.order(coid)
        with self._tx():
            self._set_status(coid, OrderStatus.ACCEPTED, now_ns, broker_order_no=order_no)
            return self._append(
                OrderAccepted(
                    seq=0,
                    client_order_id=coid,
                    broker_order_no=order_no,
                    strategy=row["strategy"],
                    symbol=row["symbol"],
                    side=Side(row["side"]),
                    qty=row["qty"],
                    price=row["price"],
                    ts_ns=now_ns,
                    trace=trace,
                )
            )

    def record_rejected(self, coid: str, code: str, reason: str, now_ns: int) -> OrderRejected:
        row = self.order(coid)
        with self._tx():
            self._set_status(coid, OrderStatus.REJECTED, now_ns, code=code, reason=reason)
            return self._append(
                OrderRejected(
                    seq=0,
                    client_order_id=coid,
                    strategy=row["strategy"],
                    symbol=row["symbol"],
                    side=Side(row["side"]),
                    qty=row["qty"],
                    price=row["price"],
                    code=code,
                    reason=reason,
                    ts_ns=now_ns,
                )
            )

    def record_fill(
        self,
        coid: str,
        order_no: str,
        fill_no: int,
        qty: int,
        price: int,
        exch_ns: int,
        now_ns: int,
        trace: Trace,
    ) -> OrderFilled | None:
        """Book a fill once (None if this fill id is already booked)."""
        row = self.order(coid)
        fid = ids.fill_id(order_no, fill_no)
        with self._tx():
            cur = self.db.execute(
                "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    fid,
                    coid,
                    order_no,
                    row["strategy"],
                    row["symbol"],
                    row["side"],
                    qty,
                    price,
                    exch_ns,
                    now_ns,
                ),
            )
            if cur.rowcount == 0:
                return None
            filled = row["filled_qty"] + qty
            leaves = max(row["qty"] - filled, 0)
            status = OrderStatus(row["status"])
            if status.is_open:
                self._set_status(
                    coid,
                    sm.after_fill(leaves),
                    now_ns,
                    filled_qty=filled,
                    filled_notional=row["filled_notional"] + qty * price,
                    broker_order_no=order_no,
                )
            else:  # a fill after the order closed: money moved, so book it; status stays
                self.db.execute(
                    "UPDATE orders SET filled_qty = ?, filled_notional = ? "
                    "WHERE client_order_id = ?",
                    (filled, row["filled_notional"] + qty * price, coid),
                )
            return self._append(
                OrderFilled(
                    seq=0,
                    fill_id=fid,
                    client_order_id=coid,
                    broker_order_no=order_no,
                    strategy=row["strategy"],
                    symbol=row["symbol"],
                    side=Side(row["side"]),
                    qty=qty,
                    price=price,
                    leaves_qty=leaves,
                    exch_ns=exch_ns,
                    ts_ns=now_ns,
                    trace=trace,
                )
            )

    def record_closed(
        self, coid: str, expired: bool, reason: str, now_ns: int
    ) -> OrderCanceled | None:
        row = self.order(coid)
        if not OrderStatus(row["status"]).is_open:
            return None
        with self._tx():
            new = OrderStatus.EXPIRED if expired else OrderStatus.CANCELED
            self._set_status(coid, new, now_ns, reason=reason)
            return self._append(
                OrderCanceled(
                    seq=0,
                    client_order_id=coid,
                    broker_order_no=row["broker_order_no"] or "",
                    strategy=row["strategy"],
                    symbol=row["symbol"],
                    side=Side(row["side"]),
                    canceled_qty=row["qty"] - row["filled_qty"],
                    reason=reason,
                    ts_ns=now_ns,
                    expired=expired,
                )
            )

    def adopt(
        self, order_no: str, symbol: str, side: Side, qty: int, price: int, now_ns: int
    ) -> str:
        """A broker order the journal never knew (placed by hand, or lost before journaling)."""
        coid = f"ADOPT-{order_no}"
        with self._tx():
            self.db.execute(
                "INSERT OR IGNORE INTO orders (client_order_id, intent_id, strategy, symbol, "
                "side, qty, price, order_type, tif, status, broker_order_no, reason, created_ns, "
                "updated_ns) VALUES (?,?,?,?,?,?,?,'LIMIT','DAY',?,?,?,?,?)",
                (
                    coid,
                    coid,
                    "unknown",
                    symbol,
                    side.value,
                    qty,
                    price,
                    OrderStatus.ACCEPTED.value,
                    order_no,
                    "adopted from the broker at reconcile",
                    now_ns,
                    now_ns,
                ),
            )
        return coid

    # ------------------------------------------------------------------ reads
    def order(self, coid: str) -> dict[str, Any]:
        row = self.db.execute(
            f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE client_order_id = ?", (coid,)
        ).fetchone()
        if row is None:
            raise KeyError(coid)
        return dict(zip(ORDER_COLUMNS, row, strict=True))

    def coid_for(self, order_no: str) -> str | None:
        row = self.db.execute(
            "SELECT client_order_id FROM orders WHERE broker_order_no = ?", (order_no,)
        ).fetchone()
        return row[0] if row else None

    def orders(self, open_only: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        where = f"WHERE status IN ({', '.join('?' * len(OPEN))})" if open_only else ""
        rows = self.db.execute(
            f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders {where} "
            "ORDER BY created_ns DESC LIMIT ?",
            (*(OPEN if open_only else ()), limit),
        )
        return [dict(zip(ORDER_COLUMNS, r, strict=True)) for r in rows]

    def positions(self) -> dict[tuple[str, str], int]:
        """Shares held per (strategy, symbol) from every journaled fill; zeros left out."""
        rows = self.db.execute(
            "SELECT strategy, symbol, SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END) "
            "FROM fills GROUP BY strategy, symbol"
        )
        return {(r[0], r[1]): int(r[2]) for r in rows if r[2]}

    def baseline(self, day: str) -> dict[str, int] | None:
        """Shares per symbol the broker held on `day` beyond what our fills explain (holdings
        QTS did not make), fixed at the day's first reconciliation; None if not fixed yet."""
        row = self.db.execute("SELECT holdings FROM baseline WHERE day = ?", (day,)).fetchone()
        return None if row is None else dict(msgspec.json.decode(row[0], type=dict[str, int]))

    def set_baseline(self, day: str, holdings: dict[str, int]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO baseline (day, holdings) VALUES (?, ?)",
            (day, msgspec.json.encode(holdings).decode()),
        )

    def open_count(self) -> int:
        """Working orders (the status index answers it; no row is read)."""
        row = self.db.execute(
            f"SELECT COUNT(*) FROM orders WHERE status IN ({', '.join('?' * len(OPEN))})", OPEN
        ).fetchone()
        return int(row[0])

    def fill_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT fill_id FROM fills")}

    def fills(self) -> list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT {', '.join(FILL_COLUMNS)} FROM fills ORDER BY ts_ns")
        return [dict(zip(FILL_COLUMNS, r, strict=True)) for r in rows]

    def events_since(self, seq: int, limit: int) -> list[ExecEvent]:
        rows = self.db.execute(
            "SELECT payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [self._decode(r[0]) for r in rows]

    def last_seq(self) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
