"""The venue's matching driven by recorded market data in exchange time, in one process.

A deterministic stand-in for the whole pipeline when only the venue's rules matter (tests,
what-if runs, the determinism check of issue 7): the clock is the recording's exchange time, the
latencies are exchange nanoseconds, and the orders come from a seeded RandomTrader. The same
recording, seed and latencies always give the same orders and fills; the process venue
(services/venue/service.py) applies the same Venue to live sockets and wall-clock time.
The caller reads the recording (services.observer.replay.read_recording: the venue may not
import the observer).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from protocol.enums import MarketPhase, OrderType, Side, TimeInForce
from protocol.messages import Book, Instrument, MarketData, PhaseChanged, Trade
from services.venue.matching import AUCTIONS, OPEN, Venue, VFill, VOrder


@dataclass(slots=True, frozen=True)
class Request:
    """An order (or, with cancel set, a cancel) on its way to the engine."""

    symbol: str = ""
    side: Side = Side.BUY
    qty: int = 0
    price: int = 0
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.DAY
    cancel: str = ""  # order number to cancel


@dataclass(slots=True)
class Tape:
    """Everything the venue did, as plain comparable rows."""

    orders: list[tuple[object, ...]] = field(default_factory=list)  # as submitted or refused
    fills: list[tuple[object, ...]] = field(default_factory=list)
    closed: list[tuple[object, ...]] = field(default_factory=list)  # canceled / expired
    events: int = 0

    def add_fills(self, fills: list[VFill]) -> None:
        self.fills.extend(
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
        )

    def add_closed(self, orders: list[VOrder], ts_ns: int) -> None:
        self.closed.extend((o.order_no, o.status, o.leaves, o.reason, ts_ns) for o in orders)


class Session:
    """Feeds market data to a Venue and delivers requests `latency` exchange-ns after they
    were made: a request made at t reaches the engine before the first event later than
    t + latency (the book it meets may have moved; a cancelled order may fill meanwhile)."""

    def __init__(self, venue: Venue, order_latency_ns: int = 0, cancel_latency_ns: int = 0) -> None:
        if order_latency_ns < 0 or cancel_latency_ns < 0:
            raise ValueError("latencies must not be negative")
        self.venue = venue
        self.order_latency_ns = order_latency_ns
        self.cancel_latency_ns = cancel_latency_ns
        self.tape = Tape()
        self.now_ns = 0
        self._pending: list[tuple[int, int, Request]] = []
        self._made = 0

    def request(self, req: Request) -> None:
        delay = self.cancel_latency_ns if req.cancel else self.order_latency_ns
        self._made += 1
        heapq.heappush(self._pending, (self.now_ns + delay, self._made, req))

    def feed(self, event: MarketData) -> None:
        at = getattr(event, "exch_ns", 0) or self.now_ns
        self._deliver(at)
        self.now_ns = max(self.now_ns, at)
        self.tape.events += 1
        v, tape, now = self.venue, self.tape, self.now_ns
        if isinstance(event, Trade):
            tape.add_fills(v.on_trade(event, now))
        elif isinstance(event, Book):
            tape.add_fills(v.on_book(event, now))
        elif isinstance(event, Instrument):
            v.on_instrument(event)
        elif isinstance(event, PhaseChanged):
            done = v.on_phase(event, now)
            tape.add_fills(done.fills)
            tape.add_closed(done.closed, now)

    def finish(self) -> Tape:
        """Deliver what is still on its way (at its own time) and return the tape."""
        self._deliver(None)
        return self.tape

    def _deliver(self, before_ns: int | None) -> None:
        while self._pending and (before_ns is None or self._pending[0][0] < before_ns):
            due, _, req = heapq.heappop(self._pending)
            self.now_ns = max(self.now_ns, due)
            self._apply(req)

    def _apply(self, req: Request) -> None:
        v, tape, now = self.venue, self.tape, self.now_ns
        if req.cancel:
            order = v.cancel(req.cancel)
            if order is not None:
                tape.add_closed([order], now)
            return
        r = v.submit(req.symbol, req.side, req.qty, req.price, req.order_type, req.tif, now)
        if r.rejected is not None:
            tape.orders.append(
                (now, req.symbol, req.side.value, req.qty, req.price, r.rejected.code)
            )
            return
        o = r.order
        assert o is not None
        tape.orders.append(
            (now, o.symbol, o.side.value, o.qty, o.price, o.order_no, o.order_type, o.tif)
        )
        tape.add_fills(r.fills)
        if o.status not in (OPEN, "filled"):
            tape.add_closed([o], now)


class RandomTrader:
    """Seeded orders on market data: now and then a buy or sell of a few shares near the
    quote, of every order type the phase allows (and sometimes one it does not), and cancels
    of its own open orders. Only the seed and the events decide what it does."""

    def __init__(self, seed: int, rate: float = 0.05) -> None:
        self.rng = random.Random(seed)
        self.rate = rate

    def on_event(self, event: MarketData, session: Session) -> None:
        if not isinstance(event, Book) or not event.bids or not event.asks:
            return
        rng, v = self.rng, session.venue
        if rng.random() >= self.rate:
            return
        symbol = event.symbol
        mine = sorted(o.order_no for o in v.open.values() if o.symbol == symbol)
        if mine and rng.random() < 0.25:
            session.request(Request(cancel=rng.choice(mine)))
            return
        holding = v.sellable(symbol)
        side = Side.SELL if holding > 0 and rng.random() < 0.5 else Side.BUY
        qty = rng.choice((1, 5, 10, 50, 100)) if side is Side.BUY else min(holding, 50)
        in_auction = v.phase_of(symbol) in AUCTIONS
        types = [OrderType.LIMIT, OrderType.MARKET]
        if not in_auction or rng.random() < 0.1:  # sometimes a type the phase refuses
            types += [OrderType.CONDITIONAL, OrderType.BEST, OrderType.PRIORITY]
        order_type = rng.choice(types)
        tif = TimeInForce.DAY
        if order_type in (OrderType.LIMIT, OrderType.MARKET, OrderType.BEST):
            tif = rng.choice((TimeInForce.DAY, TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK))
        price = 0
        if order_type in (OrderType.LIMIT, OrderType.CONDITIONAL):
            levels = event.bids if rng.random() < 0.5 else event.asks
            price = levels[min(rng.randrange(3), len(levels) - 1)][0]
        session.request(Request(symbol, side, qty, price, order_type, tif))


def replay(
    events: Iterable[MarketData],
    seed: int,
    *,
    cash: int = 100_000_000,
    commission_bp: float = 1.5,
    order_latency_ns: int = 0,
    cancel_latency_ns: int = 0,
    rate: float = 0.05,
) -> Tape:
    """Run a RandomTrader seeded `seed` against a new venue on `events`; return the tape."""
    session = Session(Venue(cash, commission_bp), order_latency_ns, cancel_latency_ns)
    trader = RandomTrader(seed, rate)
    for event in events:
        session.feed(event)
        trader.on_event(event, session)
    return session.finish()


def phases_in(events: Iterable[MarketData]) -> list[tuple[str, MarketPhase]]:
    return [(e.symbol, e.phase) for e in events if isinstance(e, PhaseChanged)]
