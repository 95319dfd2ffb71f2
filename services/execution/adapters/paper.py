"""The paper venue adapter: protocol/venue.py over a DEALER (requests) and a SUB (notices)."""

from __future__ import annotations

import itertools
from typing import Any

import zmq

from protocol import codec
from protocol.endpoints import endpoint
from protocol.enums import Side
from protocol.messages import SubmitOrder
from protocol.venue import (
    VenueAck,
    VenueCancel,
    VenueFillNotice,
    VenueNewOrder,
    VenueOrderNotice,
    VenueQuery,
    VenueQueryReply,
)
from services.execution.adapters.base import (
    AdapterEvent,
    BrokerAdapter,
    BrokerFill,
    BrokerOrder,
    BrokerUnavailable,
    CancelRejected,
    Fill,
    NoticeGap,
    NotSent,
    OrderClosed,
    SubmitAccepted,
    SubmitRejected,
)
from services.runtime import curve
from services.runtime.settings import Settings

QUERY_REQ_BASE = 1 << 40  # query request ids never collide with order refs
PROBE_EVERY_S = 1.0  # a liveness probe (a "balance" query) on the order socket this often


class PaperAdapter(BrokerAdapter):
    name = "paper"

    def __init__(self, settings: Settings) -> None:
        rt = settings.runtime
        self.venue_addr = endpoint(rt.run_dir, "venue", rt.endpoints)
        self.notice_addr = endpoint(rt.run_dir, "venue_notice", rt.endpoints)
        self.reply_decoder = codec.decoder("venue_reply")
        self.notice_decoder = codec.decoder("venue_notice")
        self.pending_cancels: dict[int, str] = {}
        self.notice_seq = 0
        self.query_ids = itertools.count(QUERY_REQ_BASE)
        self.bad_frames = 0
        # connectivity: the venue answers, or since when (monotonic) it has not
        self.timeout_s = settings.broker.request_timeout_ms / 1000.0
        self.down_since: float | None = None
        self.probe_id = 0  # the probe awaiting its answer (0: none)
        self.probe_sent = 0.0
        self.next_probe = 0.0

    def start(self, ctx: zmq.Context[Any]) -> None:
        self.ctx = ctx
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        # queue nothing for a venue that is not connected: a request queued across a venue
        # restart would reach it seconds later, long after we gave up waiting for it
        self.dealer.setsockopt(zmq.IMMEDIATE, 1)
        curve.secure(self.dealer, self.venue_addr, bind=False)  # tcp:// venue: CURVE
        self.dealer.connect(self.venue_addr)
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        curve.secure(self.sub, self.notice_addr, bind=False)
        self.sub.connect(self.notice_addr)

    def close(self) -> None:
        self.dealer.close(0)
        self.sub.close(0)

    def poll_sockets(self) -> list[zmq.Socket[Any]]:
        return [self.dealer, self.sub]

    def handle(self, sock: zmq.Socket[Any]) -> list[AdapterEvent]:
        out: list[AdapterEvent] = []
        for _ in range(256):
            try:
                frame = (
                    sock.recv_multipart(zmq.NOBLOCK)[-1]
                    if sock is self.dealer
                    else sock.recv(zmq.NOBLOCK)
                )
            except zmq.Again:
                break
            try:
                msg = (self.reply_decoder if sock is self.dealer else self.notice_decoder).decode(
                    frame
                )
            except codec.DecodeError:
                self.bad_frames += 1
                continue
            if sock is self.dealer:
                self.down_since = None  # any answer on the order socket: the venue is there
                probe = isinstance(msg, VenueQueryReply | VenueAck) and msg.req_id == self.probe_id
                if probe and self.probe_id:
                    self.probe_id = 0
                    continue
            out.extend(self._translate(msg))
        return out

    def broker_down_ms(self, mono: float) -> int:
        """0 while the venue answers, else ms since it stopped. It stops when the order
        socket has no connection (the venue process is gone: IMMEDIATE refuses the send) or a
        probe went unanswered for broker.request_timeout_ms (the venue is there but stuck).
        Sends the next probe when one is due: call it every heartbeat."""
        if self.probe_id and mono - self.probe_sent > self.timeout_s:
            self.probe_id = 0  # unanswered: lost since it was sent
            self._lost(self.probe_sent)
        if not self.probe_id and mono >= self.next_probe:
            self.next_probe = mono + PROBE_EVERY_S
            probe = next(self.query_ids)
            try:
                self._send(codec.encode(VenueQuery(req_id=probe, what="balance")))
            except NotSent:
                self._lost(mono)
            else:
                self.probe_id, self.probe_sent = probe, mono
        return 0 if self.down_since is None else max(1, int((mono - self.down_since) * 1000))

    def _lost(self, since: float) -> None:
        if self.down_since is None:
            self.down_since = since

    def _translate(self, msg: Any) -> list[AdapterEvent]:
        if isinstance(msg, VenueAck):
            if msg.req_id in self.pending_cancels:
                order_no = self.pending_cancels.pop(msg.req_id)
                return (
                    [] if msg.ok else [CancelRejected(msg.req_id, order_no, msg.code, msg.message)]
                )
            if msg.ok:
                return [SubmitAccepted(msg.req_id, msg.order_no, msg.ts_ns)]
            return [SubmitRejected(msg.req_id, msg.code, msg.message)]
        events: list[AdapterEvent] = []
        if isinstance(msg, VenueFillNotice | VenueOrderNotice):
            if self.notice_seq and msg.seq != self.notice_seq + 1 and msg.seq > self.notice_seq:
                events.append(
                    NoticeGap(f"venue notices {self.notice_seq + 1}..{msg.seq - 1} missed")
                )
            elif not self.notice_seq and msg.seq > 1:
                # a subscription misses what was published before it was live (the slow
                # joiner): whatever came before this first notice is recovered by a query
                events.append(NoticeGap(f"first venue notice is {msg.seq}: resynchronising"))
            self.notice_seq = max(self.notice_seq, msg.seq)
        if isinstance(msg, VenueFillNotice):
            events.append(
                Fill(msg.order_no, msg.fill_no, msg.qty, msg.price, msg.leaves_qty, msg.ts_ns)
            )
        elif isinstance(msg, VenueOrderNotice):
            events.append(OrderClosed(msg.order_no, msg.status, msg.leaves_qty, msg.reason))
        return events

    def submit(self, ref: int, order: SubmitOrder) -> None:
        req = VenueNewOrder(
            req_id=ref,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            price=order.price,
            order_type=order.order_type,
            tif=order.tif,
        )
        self._send(codec.encode(req))

    def cancel(self, ref: int, order_no: str) -> None:
        self._send(codec.encode(VenueCancel(req_id=ref, order_no=order_no)))
        self.pending_cancels[ref] = order_no

    def _send(self, frame: bytes) -> None:
        try:
            self.dealer.send_multipart([b"", frame], zmq.NOBLOCK)
        except zmq.Again:
            raise NotSent("the paper venue is not connected") from None

    # ------------------------------------------------------------------ blocking queries
    def _query(self, what: str, timeout: float) -> VenueQueryReply:
        sock = self.ctx.socket(zmq.DEALER)  # its own socket: replies never mix with orders'
        sock.setsockopt(zmq.LINGER, 0)
        try:
            curve.secure(sock, self.venue_addr, bind=False)
            sock.connect(self.venue_addr)
            req_id = next(self.query_ids)
            sock.send_multipart([b"", codec.encode(VenueQuery(req_id=req_id, what=what))])
            if not sock.poll(int(timeout * 1000)):
                raise BrokerUnavailable(f"venue did not answer {what!r} within {timeout:g}s")
            reply = self.reply_decoder.decode(sock.recv_multipart()[-1])
        finally:
            sock.close(0)
        if not isinstance(reply, VenueQueryReply) or reply.req_id != req_id:
            raise BrokerUnavailable(f"unexpected answer to {what!r}: {type(reply).__name__}")
        return reply

    def orders_today(self, timeout: float) -> list[BrokerOrder]:
        return [
            BrokerOrder(
                o.order_no, o.symbol, Side(o.side), o.qty, o.price, o.filled_qty, o.status, o.ts_ns
            )
            for o in self._query("orders", timeout).orders
        ]

    def fills_today(self, timeout: float) -> list[BrokerFill]:
        return [
            BrokerFill(f.order_no, f.fill_no, f.symbol, Side(f.side), f.qty, f.price, f.ts_ns)
            for f in self._query("fills", timeout).fills
        ]

    def balance(self, timeout: float) -> tuple[int, dict[str, int]]:
        reply = self._query("balance", timeout)
        return reply.cash, dict(reply.holdings)
