"""The paper venue process: a broker/exchange stand-in that execution reaches like a real one.

ROUTER `venue`: VenueNewOrder / VenueCancel / VenueQuery, each answered once. PUB
`venue_notice`: fills and order closes, numbered by their own increasing seq. Like KIS and
Kiwoom it never echoes a client order id: its own order number is the key. It does not obey our
halt (a broker would not); it matches against the observer's market data (SUB `md`).

Order of effects, always: commit to SQLite, then answer, then notify. The ack of a new order
goes out before any fill notice it caused, whatever latencies are configured.

Its clock is the wall clock, or in a replay (observer.source "replay") the exchange time of the
latest market event it has seen: order and fill times, the sell tax's settlement date and the
"today" of queries are then the recorded day's, the same on every run (docs/venue.md).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import Any

import zmq

from protocol import codec
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
    VenueRequest,
)
from services.runtime.backup import Sources
from services.runtime.backup_schedule import Backups
from services.runtime.log import logger
from services.runtime.md_sync import MdSync, observer_fetch
from services.runtime.service import Service
from services.venue.matching import (
    EXPIRED,
    FILLED,
    OPEN,
    Venue,
    VFill,
    VOrder,
    kst_day_start_ns,
)
from services.venue.store import VenueStore

QUERIES = ("open_orders", "orders", "fills", "balance")


def order_row(o: VOrder) -> dict[str, Any]:
    """An order as plain data for qts-ctl (`filled` is the filled quantity)."""
    return {
        "order_no": o.order_no,
        "symbol": o.symbol,
        "side": o.side.value,
        "qty": o.qty,
        "price": o.price,
        "order_type": o.order_type.value,
        "tif": o.tif.value,
        "filled": o.filled,
        "leaves": o.leaves if o.status == OPEN else 0,
        "status": o.status,
        "reason": o.reason,
        "ts_ns": o.ts_ns,
    }


def reference_changed(old: Instrument | None, new: Instrument) -> bool:
    """Whether `new` says something `old` did not (stream and seq change on every message)."""
    return old is None or (
        old.market,
        old.kind,
        old.base_price,
        old.upper_limit,
        old.lower_limit,
        old.name,
    ) != (new.market, new.kind, new.base_price, new.upper_limit, new.lower_limit, new.name)


class VenueService(Service):
    name = "venue"
    listens_to_control = False  # a broker does not obey our halt

    def setup(self) -> None:
        acct, cfg = self.settings.account, self.settings.venue
        self.venue = Venue(acct.initial_cash, acct.commission_rate_bp, cfg.queue_model)
        self.store = VenueStore(self.settings.runtime.state_dir / "venue.db", cfg.synchronous)
        loaded = self.store.load(acct.initial_cash)
        self.venue.restore(
            loaded.cash, loaded.holdings, loaded.next_no, loaded.open_orders, loaded.phases
        )
        for inst in loaded.instruments:
            self.venue.on_instrument(inst)
        self.notice_seq = loaded.notice_seq
        logger.info(
            "venue account: cash {:,} KRW, {} holdings, {} open orders, next order {}, notice {}, "
            "phase {}",
            self.venue.cash,
            len(self.venue.holdings),
            len(self.venue.open),
            self.venue.next_no,
            self.notice_seq,
            self.venue.phases(),
        )
        self.ack_s = cfg.ack_latency_ms / 1000.0
        self.fill_s = cfg.fill_latency_ms / 1000.0
        self.order_s = cfg.order_latency_ms / 1000.0
        self.cancel_s = cfg.cancel_latency_ms / 1000.0
        self.replay = self.settings.observer.source == "replay"
        self.exch_ns = 0  # the latest market event's exchange time (the clock of a replay)
        # requests on their way to the matching engine: (due, arrival no, identity, request)
        self.inbound: list[tuple[float, int, bytes, VenueNewOrder | VenueCancel]] = []
        self.arrivals = 0
        # delayed sends, each queue in due order (its due times never decrease)
        self.answers: deque[tuple[float, bytes, bytes]] = deque()
        self.notices: deque[tuple[float, bytes]] = deque()
        self.last_notice_due = 0.0
        self.router = self.bind(zmq.ROUTER, "venue")
        self.notice_pub = self.bind(zmq.PUB, "venue_notice")
        self.md = self.connect(zmq.SUB, "md")
        # md through md_sync: a trade lost in a gap is fetched from the observer and matched.
        # Registered before the requests: when the venue was busy and both wait, the market
        # data goes first, as it left the observer before any order it caused (docs/venue.md)
        self.md_sync = MdSync(observer_fetch(self), self.on_md, self.count)
        self.on(self.md, "md", self.md_sync.live)
        self.every(0.1, self.md_sync.poll)
        self.on_router(self.router, "venue_request", self.on_request)
        if max(self.ack_s, self.fill_s, self.order_s, self.cancel_s) > 0:
            self.every(0.001, self.flush_delayed)  # only when a latency is modelled
        self.command("orders", self.cmd_orders)
        self.command("balance", self.cmd_balance)
        # online backups of venue.db on their own thread, after execution's journal (the
        # venue may then know orders the journal does not; reconciliation adopts them)
        self.backups = Backups(self, Sources(databases=("state/venue.db",)), after=("execution",))

    def teardown(self) -> None:
        if hasattr(self, "backups"):
            self.backups.close()
        if self.answers or self.notices or self.inbound:
            # like a broker that died: the state is committed, clients reconcile by query
            # (requests still on their way never reached the engine: no order number exists)
            logger.warning(
                "venue stopping with {} requests in flight, {} answers and {} notices not sent",
                len(self.inbound),
                len(self.answers),
                len(self.notices),
            )
        self.store.close()

    def now_ns(self) -> int:
        """The venue's clock: a replay's exchange time once it has one, else the wall clock."""
        return self.exch_ns if self.replay and self.exch_ns else time.time_ns()

    # ------------------------------------------------------------------ sending
    def answer(self, identity: bytes, msg: VenueAck | VenueQueryReply) -> float:
        """Send (or schedule) one answer; returns when it goes out (monotonic seconds)."""
        frame = codec.encode(msg)
        now = time.monotonic()
        if self.ack_s <= 0:
            self.router.send_multipart([identity, b"", frame])
            return now
        due = now + self.ack_s
        self.answers.append((due, identity, frame))
        return due

    def notify(self, notices: list[VenueFillNotice | VenueOrderNotice], not_before: float) -> None:
        """Publish notices in seq order, never before `not_before` (their order's ack)."""
        now = time.monotonic()
        due = max(now + self.fill_s, not_before, self.last_notice_due)
        if due <= now and not self.notices:
            for n in notices:
                self.notice_pub.send(codec.encode(n))
            return
        self.last_notice_due = due
        self.notices.extend((due, codec.encode(n)) for n in notices)

    def flush_delayed(self) -> None:
        now = time.monotonic()
        # requests that reached the engine: their answers and notices queue behind
        while self.inbound and self.inbound[0][0] <= now:
            _, _, identity, req = heapq.heappop(self.inbound)
            if isinstance(req, VenueNewOrder):
                self.new_order(identity, req)
            else:
                self.cancel(identity, req)
        # answers first: a new order's fill notices are due no earlier than its ack
        while self.answers and self.answers[0][0] <= now:
            _, identity, frame = self.answers.popleft()
            self.router.send_multipart([identity, b"", frame])
        while self.notices and self.notices[0][0] <= now:
            self.notice_pub.send(self.notices.popleft()[1])

    def commit(
        self, orders: list[VOrder], fills: list[VFill], closed: list[VOrder], phases: bool = False
    ) -> list[VenueFillNotice | VenueOrderNotice]:
        """Number the notices for `fills` and `closed`, commit everything (with the phases when
        a phase change caused it), return the notices."""
        notices: list[VenueFillNotice | VenueOrderNotice] = []
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
        now_ns = self.now_ns()
        for o in closed:
            self.notice_seq += 1
            notices.append(
                VenueOrderNotice(
                    seq=self.notice_seq,
                    order_no=o.order_no,
                    status=o.status,
                    leaves_qty=o.leaves,
                    ts_ns=now_ns,
                    reason=o.reason,
                )
            )
        v = self.venue
        self.store.commit(
            cash=v.cash,
            holdings=v.holdings,
            next_no=v.next_no,
            notice_seq=self.notice_seq,
            orders=[*orders, *closed],
            fills=fills,
            phases=v.phases() if phases else None,
        )
        if fills:
            self.count("fills", len(fills))
        return notices

    # ------------------------------------------------------------------ market data
    def on_md(self, event: MarketData) -> None:
        exch_ns = getattr(event, "exch_ns", 0)
        if exch_ns > self.exch_ns:  # repeats of reference data and phases may carry older times
            self.exch_ns = exch_ns
        if isinstance(event, Trade):
            fills = self.venue.on_trade(event, self.now_ns())
        elif isinstance(event, Book):
            fills = self.venue.on_book(event, self.now_ns())
        elif isinstance(event, Instrument):
            # about one a second a symbol: cheap to compare, written only when it changed
            if reference_changed(self.venue.instruments.get(event.symbol), event):
                self.store.save_instrument(event)
            self.venue.on_instrument(event)
            self.count("instruments")
            return
        elif isinstance(event, PhaseChanged):
            # the observer repeats the market's phase every second: only a change is written
            before = self.venue.phases()
            done = self.venue.on_phase(event, self.now_ns())
            changed = self.venue.phases() != before
            if changed:
                self.count(f"phases.{event.phase.value}")
            if done.fills:
                logger.info(
                    "{} {}: uncross gave {} fills",
                    event.symbol or "market",
                    event.phase.value,
                    len(done.fills),
                )
            expired = sum(1 for o in done.closed if o.status == EXPIRED)
            if expired:
                self.count("expired", expired)
                logger.info("market closed: {} open orders expired", expired)
            if done.fills or done.closed:
                self.notify(self.commit([], done.fills, done.closed, phases=True), 0.0)
            elif changed:
                self.store.save_phases(self.venue.phases())
            return
        else:
            return  # EndOfStream: resting orders stay as they are
        if fills:
            self.notify(self.commit([], fills, []), 0.0)

    # ------------------------------------------------------------------ requests
    def on_request(self, identity: bytes, req: VenueRequest) -> None:
        if isinstance(req, VenueQuery):
            self.answer(identity, self.query(req))
            return
        delay = self.order_s if isinstance(req, VenueNewOrder) else self.cancel_s
        if delay > 0:
            self.arrivals += 1
            heapq.heappush(self.inbound, (time.monotonic() + delay, self.arrivals, identity, req))
        elif isinstance(req, VenueNewOrder):
            self.new_order(identity, req)
        else:
            self.cancel(identity, req)

    def new_order(self, identity: bytes, req: VenueNewOrder) -> None:
        now_ns = self.now_ns()
        result = self.venue.submit(
            req.symbol, req.side, req.qty, req.price, req.order_type, req.tif, now_ns
        )
        if result.rejected is not None or result.order is None:
            code = result.rejected.code if result.rejected else "BAD_ORDER"
            message = result.rejected.message if result.rejected else "refused"
            self.count(f"rejects.{code}")
            self.answer(
                identity,
                VenueAck(req_id=req.req_id, ok=False, code=code, message=message, ts_ns=now_ns),
            )
            return
        order = result.order
        self.count("orders")
        closed = [] if order.status in (OPEN, FILLED) else [order]
        notices = self.commit([order], result.fills, closed)
        acked = self.answer(
            identity, VenueAck(req_id=req.req_id, ok=True, order_no=order.order_no, ts_ns=now_ns)
        )
        if notices:
            self.notify(notices, acked)

    def cancel(self, identity: bytes, req: VenueCancel) -> None:
        now_ns = self.now_ns()
        order = self.venue.cancel(req.order_no)
        if order is None:
            status = self.store.order_status(req.order_no)
            code = "ORDER_CLOSED" if status else "ORDER_NOT_FOUND"
            message = f"order {req.order_no} is {status}" if status else "no such order"
            self.answer(
                identity,
                VenueAck(
                    req_id=req.req_id,
                    ok=False,
                    order_no=req.order_no,
                    code=code,
                    message=message,
                    ts_ns=now_ns,
                ),
            )
            return
        self.count("cancels")
        notices = self.commit([], [], [order])
        acked = self.answer(
            identity, VenueAck(req_id=req.req_id, ok=True, order_no=order.order_no, ts_ns=now_ns)
        )
        self.notify(notices, acked)

    def query(self, req: VenueQuery) -> VenueAck | VenueQueryReply:
        today = kst_day_start_ns(self.now_ns())
        if req.what in ("open_orders", "orders"):
            rows = (
                self.store.orders(open_only=True)
                if req.what == "open_orders"
                else self.store.orders(since_ns=today)
            )
            return VenueQueryReply(
                req_id=req.req_id,
                orders=[
                    VenueOrder(
                        order_no=o.order_no,
                        symbol=o.symbol,
                        side=o.side,
                        qty=o.qty,
                        price=o.price,
                        order_type=o.order_type,
                        tif=o.tif,
                        filled_qty=o.filled,
                        status=o.status,
                        ts_ns=o.ts_ns,
                    )
                    for o in rows
                ],
            )
        if req.what == "fills":
            return VenueQueryReply(
                req_id=req.req_id,
                fills=[
                    VenueFill(
                        order_no=f.order_no,
                        fill_no=f.fill_no,
                        symbol=f.symbol,
                        side=f.side,
                        qty=f.qty,
                        price=f.price,
                        ts_ns=f.ts_ns,
                    )
                    for f in self.store.fills(since_ns=today)
                ],
            )
        if req.what == "balance":
            return VenueQueryReply(
                req_id=req.req_id,
                cash=self.venue.cash,
                holdings={s: q for s, q in self.venue.holdings.items() if q},
            )
        self.count("rejects.BAD_QUERY")
        return VenueAck(
            req_id=req.req_id,
            ok=False,
            code="BAD_QUERY",
            message=f"unknown query {req.what!r}; one of {', '.join(QUERIES)}",
            ts_ns=self.now_ns(),
        )

    # ------------------------------------------------------------------ operators
    def cmd_orders(self, args: dict[str, Any]) -> dict[str, Any]:
        """Every order the venue ever numbered (or only open ones), by number."""
        rows = self.store.orders(open_only=bool(args.get("open_only")))
        return {"orders": [order_row(o) for o in rows]}

    def cmd_balance(self, args: dict[str, Any]) -> dict[str, Any]:
        v = self.venue
        return {
            "cash": v.cash,
            "holdings": {s: q for s, q in v.holdings.items() if q},
            "reserved_cash": v.reserved_cash(),
            "buying_power": v.buying_power(),
            "open_orders": len(v.open),
            "market_closed": v.market_closed,
            "market_phase": v.market_phase.value,
            "symbol_phases": {s: p.value for s, p in sorted(v.symbol_phase.items())},
        }
