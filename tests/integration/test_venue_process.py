"""The real venue process against a fake observer (PUB md) and a client speaking
protocol/venue.py: ack then fill notice, balance, cancels, a malformed frame counted and dropped,
SIGTERM exits 0, and after a restart on the same directory every order, fill and won is back and
the resting order keeps resting (then fills, then expires at the close). Then the opening
auction across a restart, its uncross, and a modelled order latency."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from protocol import codec
from protocol.endpoints import endpoint
from protocol.enums import MarketPhase, OrderType, Side, TimeInForce
from protocol.messages import Base, Book, Instrument, PhaseChanged, Trade
from protocol.venue import (
    VenueAck,
    VenueCancel,
    VenueFillNotice,
    VenueNewOrder,
    VenueOrderNotice,
    VenueQuery,
    VenueQueryReply,
)
from services.runtime import client, krx
from tests.kit import eventually

REPO = "/work/main"
SYM = "005930"
CASH = 100_000_000
LOWER, UPPER = krx.price_limits(71_000)


class Harness:
    """Fake observer PUB bound at md, plus a DEALER and a SUB to the venue."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.run = tmp_path / "run"
        self.run.mkdir(parents=True, exist_ok=True)
        self.ctx: zmq.Context[Any] = zmq.Context.instance()
        self.md = self.ctx.socket(zmq.PUB)
        self.md.setsockopt(zmq.LINGER, 0)
        self.md.bind(endpoint(self.run, "md"))
        self.md_seq = itertools.count(1)
        self.req_ids = itertools.count(1)
        self.replies = codec.decoder("venue_reply")
        self.notice_decoder = codec.decoder("venue_notice")
        self.proc: subprocess.Popen[bytes] | None = None
        self.ctl = client.ctl_address(self.run, "venue")

    # -------------------------------------------------------------- process
    def start(self, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.venue"],
            env={**os.environ, "QTS_RUNTIME__VAR_DIR": str(self.tmp_path), **env},
            cwd=REPO,
        )
        eventually(lambda: client.call(self.ctl, "ping", timeout=0.5), message="venue up")
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(endpoint(self.run, "venue"))
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint(self.run, "venue_notice"))

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        self.dealer.close(0)
        self.sub.close(0)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def counters(self) -> dict[str, int]:
        return dict(client.call(self.ctl, "ping", timeout=2)["counters"])

    # -------------------------------------------------------------- market data
    def publish(self, msg: Base) -> None:
        self.md.send(codec.encode(msg))

    def book(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        self.publish(
            Book(
                stream=1,
                seq=next(self.md_seq),
                symbol=SYM,
                exch_ns=time.time_ns(),
                bids=bids,
                asks=asks,
            )
        )

    def instrument(self) -> None:
        self.publish(
            Instrument(
                stream=1,
                seq=next(self.md_seq),
                symbol=SYM,
                base_price=71_000,
                upper_limit=UPPER,
                lower_limit=LOWER,
            )
        )

    def sync_market(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Publish a Book then an Instrument until the venue counts an Instrument: frames of one
        PUB arrive in order, so the Book before it has been applied too."""
        base = self.counters().get("instruments", 0)

        def seen() -> bool:
            self.book(bids, asks)
            self.instrument()
            return self.counters().get("instruments", 0) > base

        eventually(seen, message="venue applied the market data")

    # -------------------------------------------------------------- requests
    def request(self, msg: Base, timeout: float = 3.0) -> Any:
        self.dealer.send_multipart([b"", codec.encode(msg)])
        assert self.dealer.poll(int(timeout * 1000)), f"no answer to {msg}"
        return self.replies.decode(self.dealer.recv_multipart()[-1])

    def new_order(self, side: Side, qty: int, price: int, **kw: Any) -> VenueAck:
        ack = self.request(
            VenueNewOrder(
                req_id=next(self.req_ids), symbol=SYM, side=side, qty=qty, price=price, **kw
            )
        )
        assert isinstance(ack, VenueAck)
        return ack

    def cancel(self, order_no: str) -> VenueAck:
        ack = self.request(VenueCancel(req_id=next(self.req_ids), order_no=order_no))
        assert isinstance(ack, VenueAck)
        return ack

    def query(self, what: str) -> VenueQueryReply:
        reply = self.request(VenueQuery(req_id=next(self.req_ids), what=what))
        assert isinstance(reply, VenueQueryReply)
        return reply

    def notice(self, timeout: float = 3.0) -> VenueFillNotice | VenueOrderNotice:
        assert self.sub.poll(int(timeout * 1000)), "no notice"
        msg = self.notice_decoder.decode(self.sub.recv())
        assert isinstance(msg, VenueFillNotice | VenueOrderNotice)
        return msg

    def sync_notices(self) -> VenueOrderNotice:
        """Place and cancel a far-away order until its cancel notice arrives: from then on the
        SUB is known to be connected. Returns that notice."""

        def probe() -> VenueOrderNotice | None:
            ack = self.new_order(Side.BUY, 1, LOWER)
            assert ack.ok, ack
            assert self.cancel(ack.order_no).ok
            if not self.sub.poll(100):
                return None
            msg = self.notice()
            while self.sub.poll(50):  # a later probe's notice, if several got through
                msg = self.notice()
            assert isinstance(msg, VenueOrderNotice) and msg.status == "canceled"
            return msg

        return eventually(probe, message="notice subscription up")


def test_venue_process_orders_fills_persists_and_survives_bad_frames(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        # ---------------------------------------------------------------- first run
        h.start()
        h.sync_market(bids=[(69_900, 1_000)], asks=[(70_000, 100), (70_100, 100)])
        probe = h.sync_notices()

        ack = h.new_order(Side.BUY, 150, 70_100)
        fill1, fill2 = h.notice(), h.notice()

        assert ack.ok and ack.order_no.isdigit() and len(ack.order_no) == 10 and ack.ts_ns > 0
        assert isinstance(fill1, VenueFillNotice) and isinstance(fill2, VenueFillNotice)
        assert (fill1.order_no, fill1.fill_no, fill1.qty, fill1.price, fill1.leaves_qty) == (
            ack.order_no,
            1,
            100,
            70_000,
            50,
        )
        assert (fill2.fill_no, fill2.qty, fill2.price, fill2.leaves_qty) == (2, 50, 70_100, 0)
        assert [fill1.seq, fill2.seq] == [probe.seq + 1, probe.seq + 2]

        cost = 100 * 70_000 + 1_050 + 50 * 70_100 + 525  # commission 1.5 bp per fill
        balance = h.query("balance")
        assert (balance.cash, balance.holdings) == (CASH - cost, {SYM: 150})
        assert [(f.order_no, f.qty) for f in h.query("fills").fills] == [
            (ack.order_no, 100),
            (ack.order_no, 50),
        ]

        rest = h.new_order(Side.BUY, 5, 69_900)  # rests behind the 1,000 displayed
        refused = h.new_order(Side.BUY, 1, 70_050)
        closed = h.cancel(ack.order_no)
        unknown = h.cancel("0000999999")
        assert rest.ok and int(rest.order_no) == int(ack.order_no) + 1
        assert (refused.ok, refused.code, refused.order_no) == (False, "TICK_SIZE", "")
        assert (closed.ok, closed.code) == (False, "ORDER_CLOSED")
        assert (unknown.ok, unknown.code) == (False, "ORDER_NOT_FOUND")
        open_orders = h.query("open_orders").orders
        assert [(o.order_no, o.qty, o.filled_qty, o.status) for o in open_orders] == [
            (rest.order_no, 5, 0, "open")
        ]

        h.dealer.send_multipart([b"", b"\xc1 not a request"])
        h.dealer.send_multipart(
            [b"", codec.encode(Trade(stream=1, seq=1, symbol=SYM, exch_ns=0, price=1, qty=1))]
        )
        counters = eventually(
            lambda: (c := h.counters()).get("bad_frames.venue_request") == 2 and c,
            message="bad frames counted",
        )
        assert counters["fills"] == 2
        assert h.query("balance").cash == CASH - cost  # still answering
        ctl_balance = client.call(h.ctl, "balance")
        assert ctl_balance["cash"] == CASH - cost and ctl_balance["holdings"] == {SYM: 150}
        assert ctl_balance["reserved_cash"] == 5 * 69_900 + 52 and ctl_balance["open_orders"] == 1
        before = client.call(h.ctl, "orders")["orders"]

        assert h.stop() == 0

        # ---------------------------------------------------------------- restart, same dir
        # with a modelled ack latency: the ack must still come before its fill notices
        h.start(QTS_VENUE__ACK_LATENCY_MS="50")
        assert client.call(h.ctl, "orders")["orders"] == before
        assert client.call(h.ctl, "orders", {"open_only": True})["orders"] == [
            o for o in before if o["status"] == "open"
        ]
        balance = h.query("balance")
        assert (balance.cash, balance.holdings) == (CASH - cost, {SYM: 150})
        assert [f.qty for f in h.query("fills").fills] == [100, 50]
        # reference data came back from disk: the symbol is known before any market data
        known = h.new_order(Side.BUY, 1, LOWER)
        assert known.ok, known
        assert h.cancel(known.order_no).ok
        h.sync_market(bids=[(69_900, 1_000)], asks=[(70_000, 100)])
        probe2 = h.sync_notices()
        assert probe2.seq > fill2.seq  # notice numbers keep increasing across restarts

        # the order that rested before the restart still rests; a print through fills it
        h.publish(
            Trade(
                stream=1,
                seq=next(h.md_seq),
                symbol=SYM,
                exch_ns=time.time_ns(),
                price=69_800,
                qty=5,
            )
        )
        through = h.notice()
        assert isinstance(through, VenueFillNotice)
        assert (through.order_no, through.qty, through.price, through.leaves_qty) == (
            rest.order_no,
            5,
            69_900,
            0,
        )
        assert through.seq == probe2.seq + 1

        sell = VenueNewOrder(
            req_id=next(h.req_ids),
            symbol=SYM,
            side=Side.SELL,
            qty=10,
            price=0,
            order_type=OrderType.MARKET,
            tif=TimeInForce.IOC,
        )
        h.dealer.send_multipart([b"", codec.encode(sell)])
        first = None
        deadline = time.monotonic() + 3
        while first is None and time.monotonic() < deadline:
            if h.sub.poll(0):
                first = "notice"
            elif h.dealer.poll(5):
                first = "ack"
        assert first == "ack", "a fill notice overtook its order's ack"
        sell_ack = h.replies.decode(h.dealer.recv_multipart()[-1])
        sell_fill = h.notice()
        assert isinstance(sell_ack, VenueAck) and sell_ack.ok
        assert isinstance(sell_fill, VenueFillNotice)
        assert (sell_fill.order_no, sell_fill.qty, sell_fill.price) == (
            sell_ack.order_no,
            10,
            69_900,
        )

        late = h.new_order(Side.BUY, 1, 60_000)
        h.publish(
            PhaseChanged(
                stream=1,
                seq=next(h.md_seq),
                symbol="",
                exch_ns=time.time_ns(),
                phase=MarketPhase.CLOSED,
            )
        )
        expired = h.notice()
        assert isinstance(expired, VenueOrderNotice)
        assert (expired.order_no, expired.status, expired.leaves_qty) == (
            late.order_no,
            "expired",
            1,
        )
        assert h.new_order(Side.BUY, 1, 60_000).code == "MARKET_CLOSED"

        assert h.stop() == 0
    finally:
        h.kill()
        h.md.close(0)


def test_venue_process_auction_survives_restart_uncrosses_and_delays_orders(
    tmp_path: Path,
) -> None:
    """An order collected in the opening auction, the venue restarted inside the auction (it
    still collects), the uncross at the open; then a modelled order latency: the order meets
    the book that is there when it arrives, not the one it was sent against."""
    h = Harness(tmp_path)

    def market_phase(phase: MarketPhase) -> None:
        h.publish(
            PhaseChanged(
                stream=1, seq=next(h.md_seq), symbol="", exch_ns=time.time_ns(), phase=phase
            )
        )
        eventually(
            lambda: client.call(h.ctl, "balance")["market_phase"] == phase.value,
            message=f"venue in {phase.value}",
        )

    try:
        h.start()
        h.sync_market(bids=[(69_900, 1_000)], asks=[(70_000, 4)])
        h.sync_notices()
        market_phase(MarketPhase.PRE_OPEN)
        ack = h.new_order(Side.BUY, 10, 70_100)  # crosses the 70,000 ask: collects only
        refused = h.new_order(Side.BUY, 1, 70_000, tif=TimeInForce.IOC)
        assert ack.ok and (refused.ok, refused.code) == (False, "TIF_PHASE")
        assert not h.sub.poll(200), "an auction order must not fill before the uncross"
        assert h.stop() == 0

        h.start(QTS_VENUE__ORDER_LATENCY_MS="1500")
        assert client.call(h.ctl, "balance")["market_phase"] == "PRE_OPEN"
        h.sync_market(bids=[(69_900, 1_000)], asks=[(70_000, 4)])
        h.sync_notices()
        h.publish(
            PhaseChanged(
                stream=1,
                seq=next(h.md_seq),
                symbol="",
                exch_ns=time.time_ns(),
                phase=MarketPhase.CONTINUOUS,
            )
        )
        # D(70,000) = D(70,100) = 10 vs 4 offered: 4 execute; at 70,000 our 10 bid above it
        # would not all execute (KRX rule 2), so the price is 70,100
        fill = h.notice()
        assert isinstance(fill, VenueFillNotice)
        assert (fill.order_no, fill.qty, fill.price, fill.leaves_qty) == (
            ack.order_no,
            4,
            70_100,
            6,
        )
        assert h.cancel(ack.order_no).ok
        gone = h.notice()
        assert isinstance(gone, VenueOrderNotice) and gone.order_no == ack.order_no

        h.sync_market(bids=[(69_900, 1_000)], asks=[(70_000, 100)])
        req = VenueNewOrder(
            req_id=next(h.req_ids),
            symbol=SYM,
            side=Side.BUY,
            qty=10,
            price=70_000,
            tif=TimeInForce.IOC,
        )
        h.dealer.send_multipart([b"", codec.encode(req)])
        h.sync_market(bids=[(69_900, 1_000)], asks=[(70_200, 100)])  # moves before it arrives
        assert h.dealer.poll(5_000), "no answer to the delayed order"
        late = h.replies.decode(h.dealer.recv_multipart()[-1])
        missed = h.notice()
        assert isinstance(late, VenueAck) and late.ok
        assert isinstance(missed, VenueOrderNotice)
        assert (missed.order_no, missed.status, missed.leaves_qty) == (
            late.order_no,
            "canceled",
            10,
        )
        assert h.stop() == 0
    finally:
        h.kill()
        h.md.close(0)
