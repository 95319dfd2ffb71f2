"""The paper venue process: a broker/exchange stand-in that execution reaches like a real one.

ROUTER `venue`: VenueNewOrder / VenueCancel / VenueQuery, each answered once. PUB
`venue_notice`: fills and order closes, numbered. Like KIS and Kiwoom it never echoes a client
order id: its own order number is the key. It does not obey our halt (a broker would not); it
matches against the observer's market data (SUB `md`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import zmq

from protocol import codec
from protocol.enums import MarketPhase
from protocol.messages import Book, Instrument, MarketData, PhaseChanged, Trade
from protocol.venue import (
    VenueAck,
    VenueCancel,
    VenueFill,
    VenueFillNotice,
    VenueNewOrder,
    VenueOrder,
    VenueOrderNotice,
    VenueQuery,
    VenueQueryReply,
)
from services.runtime.log import logger
from services.runtime.service import Service
from services.venue.matching import Reject, Venue, VFill, VOrder
from services.venue.store import VenueStore


class VenueService(Service):
    name = "venue"
    listens_to_control = False

    def setup(self) -> None:
        acct = self.settings.account
        self.venue = Venue(
            acct.initial_cash, acct.commission_rate_bp, self.settings.venue.queue_model
        )
        self.store = VenueStore(self.settings.runtime.state_dir / "venue.db")
        self.notice_seq = self.store.load(self.venue, acct.initial_cash)
        logger.info(
            "venue book: cash {:,} KRW, {} open orders", self.venue.cash, len(self.venue.open)
        )
        self.router = self.bind(zmq.ROUTER, "venue")
        self.notices = self.bind(zmq.PUB, "venue_notice")
        self.md = self.connect(zmq.SUB, "md")
        self.on(self.md, "md", self.on_md)
        self.on_router(self.router, "venue_request", self.handle)
        self.delayed: list[tuple[float, Callable[[], None]]] = []
        self.every(0.001, self.run_delayed)
        self.command("orders", self.cmd_orders)
        self.command("balance", self.cmd_balance)

    # ------------------------------------------------------------------ latency model
    def later(self, delay_ms: float, fn: Callable[[], None]) -> None:
        if delay_ms <= 0:
            fn()
        else:
            self.delayed.append((time.monotonic() + delay_ms / 1000.0, fn))

    def run_delayed(self) -> None:
        if not self.delayed:
            return
        now = time.monotonic()
        due = [fn for t, fn in self.delayed if t <= now]
        self.delayed = [(t, fn) for t, fn in self.delayed if t > now]
        for fn in due:
            fn()

    # ------------------------------------------------------------------ market data
    def on_md(self, event: MarketData) -> None:
        now = time.time_ns()
        if isinstance(event, Trade):
            self.commit_and_notify([], self.venue.on_trade(event, now))
        elif isinstance(event, Book):
            self.commit_and_notify([], self.venue.on_book(event, now))
        elif isinstance(event, Instrument):
            self.venue.on_instrument(event)
        elif isinstance(event, PhaseChanged) and event.symbol == "":
            closed = event.phase is MarketPhase.CLOSED
            if closed and not self.venue.closed_market:
                self.commit_and_notify(self.venue.expire_all(), [], reason="expired at close")
            self.venue.closed_market = closed

    def commit_and_notify(
        self, closed: list[VOrder], fills: list[VFill], reason: str = "", saved: bool = False
    ) -> None:
        if not closed and not fills:
            return
        notices: list[Any] = []
        for f in fills:
            self.notice_seq += 1
            notices.append(
                VenueFillNotice(
                    seq=self.notice_seq,
                    order_no=f.order.order_no,
                    fill_no=f.fill_no,
                    symbol=f.order.symbol,
                    side=f.order.side,
                    qty=f.qty,
                    price=f.price,
                    leaves_qty=f.leaves,
                    ts_ns=f.ts_ns,
                )
            )
        for o in closed:
            self.notice_seq += 1
            notices.append(
                VenueOrderNotice(
                    seq=self.notice_seq,
                    order_no=o.order_no,
                    status=o.status,
                    leaves_qty=o.leaves,
                    ts_ns=time.time_ns(),
                    reason=reason,
                )
            )
        if not saved:
            self.store.save(self.venue, closed, fills, self.notice_seq)  # on disk before told
        else:
            self.store.save(self.venue, [], [], self.notice_seq)  # the notice counter
        frames = [codec.encode(n) for n in notices]

        def send() -> None:
            for frame in frames:
                self.notices.send(frame)

        self.later(self.settings.venue.fill_latency_ms, send)

    # ------------------------------------------------------------------ requests
    def send_to(self, identity: bytes, msg: Any, delay_ms: float = 0.0) -> None:
        frame = codec.encode(msg)

        def send() -> None:
            self.router.send_multipart([identity, b"", frame])

        self.later(delay_ms, send)

    def handle(self, identity: bytes, req: Any) -> None:
        now = time.time_ns()
        ack_ms = self.settings.venue.ack_latency_ms
        if isinstance(req, VenueNewOrder):
            try:
                order, fills = self.venue.submit(
                    req.symbol, req.side, req.qty, req.price, req.order_type, req.tif, now
                )
            except Reject as rej:
                self.count(f"rejects.{rej.code}")
                self.send_to(
                    identity,
                    VenueAck(
                        req_id=req.req_id, ok=False, code=rej.code, message=rej.message, ts_ns=now
                    ),
                    ack_ms,
                )
                return
            self.store.save(self.venue, [order], fills, self.notice_seq)
            self.send_to(
                identity,
                VenueAck(req_id=req.req_id, ok=True, order_no=order.order_no, ts_ns=now),
                ack_ms,
            )
            closed = [order] if order.status == "canceled" else []
            self.commit_and_notify(closed, fills, reason="IOC/FOK/market remainder", saved=True)
        elif isinstance(req, VenueCancel):
            try:
                order = self.venue.cancel(req.order_no)
            except Reject:
                status = self.store.order_status(req.order_no)
                code = "ORDER_CLOSED" if status else "ORDER_NOT_FOUND"
                self.send_to(
                    identity,
                    VenueAck(
                        req_id=req.req_id,
                        ok=False,
                        code=code,
                        message=f"order {req.order_no}: {status or 'unknown'}",
                        ts_ns=now,
                    ),
                    ack_ms,
                )
                return
            self.store.save(self.venue, [order], [], self.notice_seq)
            self.send_to(
                identity,
                VenueAck(req_id=req.req_id, ok=True, order_no=order.order_no, ts_ns=now),
                ack_ms,
            )
            self.commit_and_notify([order], [], reason="canceled by request", saved=True)
        elif isinstance(req, VenueQuery):
            self.send_to(identity, self.query(req))

    def query(self, req: VenueQuery) -> VenueQueryReply:
        if req.what in ("open_orders", "orders"):
            rows = self.store.orders(open_only=req.what == "open_orders")
            return VenueQueryReply(
                req_id=req.req_id,
                orders=[
                    VenueOrder(
                        order_no=r[0],
                        symbol=r[1],
                        side=r[2],
                        qty=r[3],
                        price=r[4],
                        order_type=r[5],
                        tif=r[6],
                        filled_qty=r[7],
                        status=r[8],
                        ts_ns=r[9],
                    )
                    for r in rows
                ],
            )
        if req.what == "fills":
            return VenueQueryReply(
                req_id=req.req_id,
                fills=[
                    VenueFill(
                        order_no=r[0],
                        fill_no=r[1],
                        symbol=r[2],
                        side=r[3],
                        qty=r[4],
                        price=r[5],
                        ts_ns=r[6],
                    )
                    for r in self.store.fills()
                ],
            )
        return VenueQueryReply(
            req_id=req.req_id,
            cash=self.venue.cash,
            holdings={s: q for s, q in self.venue.holdings.items() if q},
        )

    # ------------------------------------------------------------------ operators
    def cmd_orders(self, args: dict[str, Any]) -> dict[str, Any]:
        keys = (
            "order_no",
            "symbol",
            "side",
            "qty",
            "price",
            "order_type",
            "tif",
            "filled",
            "status",
            "ts_ns",
        )
        return {
            "orders": [
                dict(zip(keys, r, strict=True))
                for r in self.store.orders(bool(args.get("open_only")))
            ]
        }

    def cmd_balance(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "cash": self.venue.cash,
            "holdings": {s: q for s, q in self.venue.holdings.items() if q},
            "reserved_cash": self.venue.reserved_cash(),
            "open_orders": len(self.venue.open),
        }
