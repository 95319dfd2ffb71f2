"""Execution's logic: orders in, broker calls out, broker answers to journaled events.

Pure of sockets: the broker adapter and the publish function are injected, clocks passed in.
The journal is written before every send and every broker answer is journaled before it is
published. An order whose outcome is unknown (no answer in time, or a crash between send and
answer) is never re-sent: reconcile() asks the broker and matches.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from protocol.codes import Reason
from protocol.enums import OrderStatus, OrderType, Side, TradingState
from protocol.messages import (
    CancelOrder,
    ExecEvent,
    Instrument,
    IntentDenied,
    SubmitOrder,
    Trace,
)
from services.execution.adapters.base import (
    AdapterEvent,
    BrokerAdapter,
    BrokerOrder,
    CancelRejected,
    Fill,
    NoticeGap,
    NotSent,
    OrderClosed,
    SubmitAccepted,
    SubmitRejected,
)
from services.execution.journal import Journal
from services.execution.queries import BrokerSnapshot, take_snapshot
from services.runtime import ids
from services.runtime.calendar import KST
from services.runtime.log import logger
from services.runtime.session import SessionClock
from services.runtime.settings import Settings

FLATTEN = "flatten:"  # intent ids of the orders `halt --flatten` makes: flatten:<epoch>:...

UNANSWERED = (OrderStatus.PENDING.value, OrderStatus.SENT.value)
CLOCK_SKEW_NS = 1_000_000_000  # broker and host clocks may disagree by this much


@dataclass
class InFlight:
    client_order_id: str
    sent_mono: float
    trace: Trace
    unknown: bool = False  # no answer in time: outcome unknown, resolved by reconcile


class ExecutionEngine:
    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        adapter: BrokerAdapter,
        publish: Callable[[ExecEvent], None],
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.adapter = adapter
        self.publish = publish
        self.refs = itertools.count(1)
        self.inflight: dict[int, InFlight] = {}  # submit ref -> order awaiting its number
        self.early: dict[str, list[Fill | OrderClosed]] = {}  # notices before their order's ack
        self.cancel_on_ack: set[str] = set()  # halted while the order had no number yet
        self.halt_cancelling: set[str] = set()  # cancelled for the current halt, unconfirmed
        self.cancel_retry: set[str] = set()  # cancels that could not leave (broker down)
        self.ready = False
        self.reconcile_due = False  # an unknown outcome or a notice gap asks for a reconcile
        self.counters: dict[str, int] = {}
        self.halt_epoch = 0
        self.flatten_epoch = 0  # > 0 while `halt --flatten` runs (REDUCING with the flag)
        self.flatten_cancelled: set[str] = set()  # strategy orders cancelled for the flatten
        self.limits: dict[str, Instrument] = {}  # daily price limits, for flatten prices
        self.flatten_sent: dict[tuple[str, str], float] = {}  # position -> last send (mono s)
        # no order outside the exchange's session, by the wall clock and the KRX calendar, as a
        # gate of its own behind risk's (which follows the market data's phase); not for a
        # replay, whose exchange clock is not the wall clock (the paper venue gates it)
        live_clock = settings.session.clock == "exchange" and settings.observer.source != "replay"
        self.session = SessionClock(settings.session) if live_clock else None

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def emit(self, event: ExecEvent | None) -> None:
        if event is not None:
            self.publish(event)

    # ------------------------------------------------------------------ orders from risk
    def on_order(
        self,
        msg: SubmitOrder | CancelOrder | IntentDenied,
        state: TradingState,
        fresh: bool,
        now_ns: int,
        mono_ns: int,
    ) -> None:
        if isinstance(msg, CancelOrder):
            if self.flatten_epoch and self.is_flatten_order(msg.client_order_id):
                # a strategy cancelling an order of the operator's flatten (it sees them as
                # its own): the flatten owns its orders until it is done
                self.count("flatten_cancels_refused")
                return
            self.cancel(msg.client_order_id, msg.reason or "cancel requested")
        elif isinstance(msg, IntentDenied):
            self.emit(self.journal.record_denied(msg, now_ns))
        else:
            self.submit(msg, state, fresh, now_ns, mono_ns)

    def refusal(
        self, o: SubmitOrder, state: TradingState, fresh: bool, now_ns: int
    ) -> tuple[str, str] | None:
        """Execution is the last gate: the state may have changed since risk decided."""
        age_ms = (now_ns - o.intent_ns) / 1e6
        if age_ms > self.settings.execution.max_intent_age_ms:
            return Reason.STALE_INTENT, (
                f"intent is {age_ms:.0f} ms old > max_intent_age_ms "
                f"{self.settings.execution.max_intent_age_ms}"
            )
        if not self.ready:
            return Reason.NOT_READY, "execution is reconciling with the broker"
        if self.session is not None and not self.session.open_for_orders(now_ns):
            phase = self.session.at(now_ns).phase.value
            return Reason.SESSION_CLOSED, f"the exchange is {phase} (KRX calendar, wall clock)"
        if state is TradingState.HALTED:
            return Reason.HALTED, "trading is HALTED"
        if not fresh:
            return Reason.FAILSAFE, "no word from the supervisor within the fail-safe time"
        if state is TradingState.REDUCING and not o.reduce_only:
            return Reason.REDUCE_ONLY, "REDUCING: only reduce-only orders pass"
        if self.flatten_epoch and not o.intent_id.startswith(FLATTEN):
            # the operator's flatten owns the positions now: a strategy's own reduce-only sell
            # racing the flatten's could sell the same shares twice
            return Reason.REDUCE_ONLY, "flatten under way: only the flatten's orders pass"
        return None

    def submit(
        self, o: SubmitOrder, state: TradingState, fresh: bool, now_ns: int, mono_ns: int
    ) -> None:
        if self.journal.has_order(o.client_order_id):
            self.count("duplicate_orders")  # a resent intent never becomes a second order
            return
        refusal = self.refusal(o, state, fresh, now_ns)
        if refusal is not None:
            code, reason = refusal
            self.emit(
                self.journal.record_denied(
                    IntentDenied(
                        intent_id=o.intent_id,
                        strategy=o.strategy,
                        symbol=o.symbol,
                        side=o.side,
                        qty=o.qty,
                        price=o.price,
                        code=code,
                        reason=reason,
                        ts_ns=now_ns,
                        trace=o.trace,
                    ),
                    now_ns,
                )
            )
            return
        trace = msgspec.structs.replace(o.trace, sent=mono_ns)
        o = msgspec.structs.replace(o, trace=trace)
        self.emit(self.journal.record_pending(o, now_ns))  # committed before the send
        ref = next(self.refs)
        self.inflight[ref] = InFlight(o.client_order_id, mono_ns / 1e9, trace)
        try:
            self.adapter.submit(ref, o)
        except NotSent as exc:
            # provably never left: rejected, not "unknown" (nothing to reconcile)
            del self.inflight[ref]
            self.count("orders_not_sent")
            self.emit(
                self.journal.record_rejected(
                    o.client_order_id, Reason.BROKER_UNAVAILABLE, str(exc), now_ns
                )
            )
            return
        self.journal.mark_sent(o.client_order_id, now_ns)
        self.count("orders_sent")

    def cancel(self, coid: str, reason: str) -> bool:
        try:
            row = self.journal.order(coid)
        except KeyError:
            return False
        if not OrderStatus(row["status"]).is_open:
            return False
        if not row["broker_order_no"]:
            self.cancel_on_ack.add(coid)
            return True
        try:
            self.adapter.cancel(next(self.refs), row["broker_order_no"])
        except NotSent:
            self.cancel_retry.add(coid)  # tried again by retry_cancels() until it goes out
            self.count("cancels_not_sent")
            return True
        self.cancel_retry.discard(coid)
        self.count("cancels_sent")
        return True

    def retry_cancels(self) -> None:
        for coid in list(self.cancel_retry):
            if not self.cancel(coid, "retry"):
                self.cancel_retry.discard(coid)  # closed meanwhile

    # ------------------------------------------------------------------ halt
    def cancel_all(self, epoch: int) -> int:
        """HALTED: cancel every open order at the broker. Returns how many cancels went out."""
        if epoch != self.halt_epoch:
            self.halt_epoch = epoch
            self.counters["halt_cancels_sent"] = 0
            self.counters["halt_cancels_confirmed"] = 0
            self.halt_cancelling.clear()
        sent = 0
        for row in self.journal.orders(open_only=True, limit=1_000_000):
            if self.cancel(row["client_order_id"], "halt"):
                self.halt_cancelling.add(row["client_order_id"])
                sent += 1
        self.count("halt_cancels_sent", sent)
        return sent

    # ------------------------------------------------------------------ flatten
    def begin_flatten(self, epoch: int) -> None:
        if epoch != self.flatten_epoch:
            self.flatten_epoch = epoch
            self.flatten_cancelled.clear()
            self.flatten_sent.clear()
            self.counters["flatten_epoch"] = epoch
            self.counters["flatten_orders"] = 0
            logger.warning("flatten (epoch {}): cancelling open orders, closing positions", epoch)

    def is_flatten_order(self, coid: str) -> bool:
        try:
            return str(self.journal.order(coid)["intent_id"]).startswith(FLATTEN)
        except KeyError:
            return False

    def end_flatten(self) -> None:
        self.flatten_epoch = 0
        self.counters.pop("flatten_epoch", None)

    def flatten_step(
        self, state: TradingState, fresh: bool, now_ns: int, mono_ns: int
    ) -> tuple[int, int]:
        """One pass of `halt --flatten`: cancel every strategy order, and once none is left
        working, sell every long (buy back every short) with reduce-only orders at the daily
        price limit, which trade like market orders in every phase (a MARKET order where the
        limits are unknown). What is already working for a position is never sent again, and
        an order whose outcome is unknown stays open in the journal, so it counts as working
        until reconciliation settles it. Returns (positions, shares) still to close."""
        prefix = f"{FLATTEN}{self.flatten_epoch}:"
        working: dict[tuple[str, str], int] = {}
        others = 0
        for row in self.journal.orders(open_only=True, limit=1_000_000):
            if row["intent_id"].startswith(prefix):
                key = (row["strategy"], row["symbol"])
                working[key] = working.get(key, 0) + row["qty"] - row["filled_qty"]
                continue
            others += 1
            coid = row["client_order_id"]
            if coid not in self.flatten_cancelled and self.cancel(coid, "flatten"):
                self.flatten_cancelled.add(coid)
        positions = self.journal.positions()
        shares = sum(abs(q) for q in positions.values())
        self.counters["flatten_positions"] = len(positions)
        self.counters["flatten_shares"] = shares
        if others or not self.ready:
            return len(positions), shares  # their fills would change the positions
        for (strategy, symbol), qty in sorted(positions.items()):
            left = abs(qty) - working.get((strategy, symbol), 0)
            mono = mono_ns / 1e9
            # a rejected flatten order is tried again, but at most once a second per position
            if left <= 0 or mono - self.flatten_sent.get((strategy, symbol), -1e9) < 1.0:
                continue
            self.flatten_sent[(strategy, symbol)] = mono
            side = Side.SELL if qty > 0 else Side.BUY
            inst = self.limits.get(symbol)
            if inst is None:
                order_type, price = OrderType.MARKET, 0
            else:
                order_type = OrderType.LIMIT
                price = inst.lower_limit if side is Side.SELL else inst.upper_limit
            self.count("flatten_orders")
            # unique across retries and restarts (wall clock) and within a pass (the count)
            intent = f"{prefix}{strategy}:{symbol}:{now_ns}:{self.counters['flatten_orders']}"
            self.submit(
                SubmitOrder(
                    client_order_id=ids.client_order_id(intent),
                    intent_id=intent,
                    strategy=strategy,
                    symbol=symbol,
                    side=side,
                    qty=left,
                    price=price,
                    order_type=order_type,
                    reduce_only=True,
                    intent_ns=now_ns,
                ),
                state,
                fresh,
                now_ns,
                mono_ns,
            )
        return len(positions), shares

    # ------------------------------------------------------------------ broker answers
    def on_adapter(self, events: list[AdapterEvent], now_ns: int, mono_ns: int) -> None:
        for ev in events:
            if isinstance(ev, SubmitAccepted):
                self.on_accepted(ev, now_ns, mono_ns)
            elif isinstance(ev, SubmitRejected):
                flight = self.inflight.pop(ev.ref, None)
                if flight is None:
                    continue
                self.emit(
                    self.journal.record_rejected(
                        flight.client_order_id,
                        Reason.BROKER_REJECT,
                        f"{ev.code}: {ev.message}",
                        now_ns,
                    )
                )
                self.count("broker_rejects")
            elif isinstance(ev, Fill | OrderClosed):
                self.on_notice(ev, now_ns)
            elif isinstance(ev, CancelRejected):
                self.count("cancel_rejects")
                logger.info("cancel of {} refused: {} {}", ev.order_no, ev.code, ev.message)
                # the broker says it is closed while we think it open: we missed its end
                self.reconcile_due = True
            elif isinstance(ev, NoticeGap):
                logger.warning("{}; reconciling", ev.detail)
                self.count("notice_gaps")
                self.reconcile_due = True

    def on_accepted(self, ev: SubmitAccepted, now_ns: int, mono_ns: int) -> None:
        flight = self.inflight.pop(ev.ref, None)
        if flight is None:
            return
        coid = flight.client_order_id
        row = self.journal.order(coid)
        if row["broker_order_no"]:
            return  # reconcile already matched it
        trace = msgspec.structs.replace(flight.trace, acked=mono_ns)
        self.emit(self.journal.record_accepted(coid, ev.order_no, now_ns, trace))
        self.apply_early(ev.order_no, now_ns)
        if coid in self.cancel_on_ack:
            self.cancel_on_ack.discard(coid)
            self.cancel(coid, "halt")

    def apply_early(self, order_no: str, now_ns: int) -> None:
        """Notices held because they came before the answer naming their order number."""
        for notice in self.early.pop(order_no, []):
            self.on_notice(notice, now_ns)

    def on_notice(self, ev: Fill | OrderClosed, now_ns: int) -> None:
        coid = self.journal.coid_for(ev.order_no)
        if coid is None:
            # the ack naming this order number has not arrived yet (different socket)
            self.early.setdefault(ev.order_no, []).append(ev)
            return
        if isinstance(ev, Fill):
            self.emit(
                self.journal.record_fill(
                    coid, ev.order_no, ev.fill_no, ev.qty, ev.price, ev.ts_ns, now_ns, Trace()
                )
            )
        else:
            event = self.journal.record_closed(
                coid, ev.status == "expired", ev.reason or ev.status, now_ns
            )
            if event is not None and coid in self.halt_cancelling:
                self.halt_cancelling.discard(coid)
                self.count("halt_cancels_confirmed")
            self.emit(event)

    def check_timeouts(self, mono: float, now_ns: int) -> None:
        limit = self.settings.broker.request_timeout_ms / 1000.0
        late = [f for f in self.inflight.values() if not f.unknown and mono - f.sent_mono > limit]
        for flight in late:
            flight.unknown = True
            self.count("unknown_outcomes")
            logger.warning(
                "no answer for {} within {:g}s: outcome unknown, reconciling (never re-sent)",
                flight.client_order_id,
                limit,
            )
        if late:
            self.reconcile_due = True  # the service runs it (with back-off if the broker is down)

    # ------------------------------------------------------------------ reconciliation
    def reconcile(
        self, now_ns: int, settle_ns: int = 0, timeout: float | None = None
    ) -> dict[str, int]:
        """Ask the broker (blocking) and reconcile_with() its answer. Raises BrokerUnavailable.
        The service asks on a thread of its own instead (services/execution/queries.py)."""
        self.reconcile_due = False
        if timeout is None:
            timeout = self.settings.broker.request_timeout_ms / 1000.0
        return self.reconcile_with(take_snapshot(self.adapter, timeout), now_ns, settle_ns)

    def reconcile_with(
        self, snapshot: BrokerSnapshot, now_ns: int, settle_ns: int = 0
    ) -> dict[str, int]:
        """Match the journal with the broker's orders and fills as of `snapshot.asked_ns`.

        settle_ns: fills younger than this (when asked) are left to their notices, which are
        on their way (a periodic check must not report a notice in flight as a difference).
        Orders journaled after the question was asked cannot be in the answer: they are not
        judged by it."""
        asked_ns = snapshot.asked_ns or now_ns
        broker_orders = snapshot.orders
        broker_fills = snapshot.fills
        stats = {"matched": 0, "adopted": 0, "fills": 0, "closed": 0, "lost": 0}
        known = {
            r["broker_order_no"]: r
            for r in self.journal.orders(limit=10_000_000)
            if r["broker_order_no"]
        }
        awaited = {f.client_order_id for f in self.inflight.values() if not f.unknown}
        unanswered = [
            r
            for r in self.journal.orders(open_only=True, limit=1_000_000)
            # PENDING too: a crash between the send and marking it SENT leaves it PENDING;
            # an order sent moments ago whose answer is still on its way is not a difference
            if r["status"] in UNANSWERED
            and not r["broker_order_no"]
            and r["client_order_id"] not in awaited
            and r["created_ns"] < asked_ns
        ]
        by_no = {o.order_no: o for o in broker_orders}
        awaited_rows = [
            r
            for r in self.journal.orders(open_only=True, limit=1_000_000)
            if r["client_order_id"] in awaited and not r["broker_order_no"]
        ]

        # an order reaches the broker within its send's answer timeout, or never
        window_ns = int((self.settings.broker.request_timeout_ms / 1000.0 + 1.0) * 1e9)

        def same(r: dict[str, Any], bo: BrokerOrder) -> bool:
            # the broker received it after we journaled it, and within the answer timeout
            # (the adapter queues nothing across a disconnect, so it cannot arrive later)
            lag = bo.ts_ns - r["created_ns"]
            return (
                r["symbol"] == bo.symbol
                and r["side"] == bo.side.value
                and r["qty"] == bo.qty
                and r["price"] == bo.price
                and -CLOCK_SKEW_NS <= lag <= window_ns
            )

        def closest(rows: list[dict[str, Any]], bo: BrokerOrder) -> dict[str, Any] | None:
            candidates = [r for r in rows if same(r, bo)]
            return min(candidates, key=lambda r: abs(bo.ts_ns - r["created_ns"]), default=None)

        for bo in sorted(broker_orders, key=lambda o: o.ts_ns):
            if bo.order_no in known:
                continue
            match = closest(unanswered, bo)
            on_its_way = closest(awaited_rows, bo)
            if on_its_way is not None and (
                match is None
                or abs(bo.ts_ns - on_its_way["created_ns"]) < abs(bo.ts_ns - match["created_ns"])
            ):
                # our own order whose ack has not been read yet: the ack will map it
                awaited_rows.remove(on_its_way)
                continue
            if match is not None:
                unanswered.remove(match)
                coid = match["client_order_id"]
                if match["status"] == OrderStatus.PENDING.value:
                    self.journal.mark_sent(coid, now_ns)
                self.emit(self.journal.record_accepted(coid, bo.order_no, now_ns, Trace()))
                for ref, f in list(self.inflight.items()):
                    if f.client_order_id == coid:
                        del self.inflight[ref]
                self.apply_early(bo.order_no, now_ns)
                stats["matched"] += 1
            else:
                self.journal.adopt(bo.order_no, bo.symbol, bo.side, bo.qty, bo.price, now_ns)
                self.apply_early(bo.order_no, now_ns)
                logger.warning(
                    "adopted broker order {} ({} {} {} @ {}) the journal did not know",
                    bo.order_no,
                    bo.side.value,
                    bo.qty,
                    bo.symbol,
                    bo.price,
                )
                stats["adopted"] += 1
        booked = self.journal.fill_ids()  # one read, not one transaction per known fill
        for bf in sorted(broker_fills, key=lambda f: (f.ts_ns, f.order_no, f.fill_no)):
            # a fill stamped after the question (a broker's clock, or one that dates a
            # recovered fill by its answer) is booked at once unless a settle time is asked for
            young = settle_ns > 0 and asked_ns - bf.ts_ns < settle_ns
            if ids.fill_id(bf.order_no, bf.fill_no) in booked or young:
                continue
            coid = self.journal.coid_for(bf.order_no)
            if coid is None:
                continue
            event = self.journal.record_fill(
                coid, bf.order_no, bf.fill_no, bf.qty, bf.price, bf.ts_ns, now_ns, Trace()
            )
            if event is not None:
                stats["fills"] += 1
                self.emit(event)
        for row in self.journal.orders(open_only=True, limit=1_000_000):
            done = by_no.get(row["broker_order_no"] or "")
            if done is not None and done.status in ("canceled", "expired", "rejected"):
                closed = self.journal.record_closed(
                    row["client_order_id"],
                    done.status == "expired",
                    f"{done.status} at the broker",
                    now_ns,
                )
                if closed is not None:
                    stats["closed"] += 1
                    self.emit(closed)
        for row in unanswered:
            self.emit(
                self.journal.record_rejected(
                    row["client_order_id"],
                    Reason.NOT_AT_BROKER,
                    "not found at broker after restart or an unanswered send",
                    now_ns,
                )
            )
            for ref, f in list(self.inflight.items()):
                if f.client_order_id == row["client_order_id"]:
                    del self.inflight[ref]
            stats["lost"] += 1
        return stats

    def check_positions(self, holdings: dict[str, int], now_ns: int) -> dict[str, tuple[int, int]]:
        """Shares per symbol, ours against the broker's: {symbol: (ours, broker's)} where they
        differ. Ours = every journaled fill plus the day's baseline, which the day's first
        check fixes from the broker (holdings QTS did not make, e.g. bought by hand)."""
        day = dt.datetime.fromtimestamp(now_ns / 1e9, KST).date().isoformat()
        ours: dict[str, int] = {}
        for (_, symbol), qty in self.journal.positions().items():
            ours[symbol] = ours.get(symbol, 0) + qty
        baseline = self.journal.baseline(day)
        if baseline is None:
            baseline = {
                s: holdings.get(s, 0) - ours.get(s, 0)
                for s in holdings.keys() | ours.keys()
                if holdings.get(s, 0) != ours.get(s, 0)
            }
            self.journal.set_baseline(day, baseline)
            if baseline:
                logger.warning(
                    "the broker holds shares our fills do not explain (taken as the day's "
                    "baseline, not traded by QTS): {}",
                    baseline,
                )
        return {
            s: (ours.get(s, 0) + baseline.get(s, 0), holdings.get(s, 0))
            for s in sorted(holdings.keys() | ours.keys() | baseline.keys())
            if ours.get(s, 0) + baseline.get(s, 0) != holdings.get(s, 0)
        }

    def open_orders(self) -> int:
        return self.journal.open_count()

    def side_of(self, coid: str) -> Side:
        return Side(self.journal.order(coid)["side"])

    def summary(self) -> dict[str, Any]:
        return {"ready": self.ready, "inflight": len(self.inflight), **self.counters}
