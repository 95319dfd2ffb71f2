"""KisAdapter: the BrokerAdapter over the KIS REST API and WebSocket.

Threads: submit() and cancel() put a job on a queue and return (never block, never fail
except NotSent after close()); a worker thread does the POSTs. The WebSocket thread reads
execution notices. Both hand AdapterEvents back through a deque and wake the execution loop
with a byte on an inproc PAIR socket it polls. The blocking queries run on the caller's
thread with their own HTTP session.

Outcomes of an order POST:
  - answered rt_cd "0" -> SubmitAccepted; refused (business, auth, rate limit after retries)
    -> SubmitRejected;
  - never connected, or could not start before its send-by time -> SubmitRejected NOT_SENT;
  - read timeout, dropped connection, unparseable or unclassified gateway answer -> no event:
    execution marks it unknown after broker.request_timeout_ms and reconciles. Never re-sent.
A job starts no attempt later than 0.9 x broker.request_timeout_ms after submit(), so an order
execution already reconciled as "not at the broker" cannot appear there afterwards.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import websocket
import zmq

from protocol.messages import SubmitOrder
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
from services.execution.adapters.common.errors import (
    AuthError,
    BadResponse,
    BrokerError,
    NotDelivered,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    TokenExpired,
    TokenThrottled,
    TransportError,
)
from services.execution.adapters.common.kst import kst_ns, now_kst, today_kst
from services.execution.adapters.common.wsclient import Backoff, ReconnectingWebSocket
from services.execution.adapters.kis import wire
from services.execution.adapters.kis.ledger import FillLedger, OrderInfo
from services.execution.adapters.kis.rest import KisConfig, KisRest, shared_state
from services.runtime.log import logger
from services.runtime.settings import Settings

REFUSED = (Rejected, AuthError, RateLimited, TokenExpired, TokenThrottled)  # did nothing
ROWS_FRESH_S = 1.0  # fills_today right after orders_today reuses its rows (once)
# a cancel that got no answer is sent again (a cancel can be repeated safely: a second one is
# refused, it cannot add exposure) every CANCEL_RETRY_EVERY_S for up to CANCEL_RETRY_FOR_S
CANCEL_RETRY_EVERY_S = 1.0
CANCEL_RETRY_FOR_S = 30.0
SUBSCRIBE_ANSWER_S = 10.0  # a subscription unanswered this long: a new session
_ids = itertools.count(1)


@dataclass(frozen=True)
class _Submit:
    ref: int
    order: SubmitOrder
    queued: float


@dataclass(frozen=True)
class _Cancel:
    ref: int
    order_no: str
    queued: float
    first: float = 0.0  # when the first attempt was queued (retries keep it)


class KisAdapter(BrokerAdapter):
    name = "kis"

    def __init__(self, settings: Settings, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.kis = settings.broker.kis
        self.cfg = KisConfig.from_settings(settings, env)
        self.request_timeout_s = settings.broker.request_timeout_ms / 1000.0
        self.events: collections.deque[AdapterEvent] = collections.deque()
        self.emit_lock = threading.Lock()
        self.ledger_lock = threading.Lock()
        self.jobs: queue.Queue[_Submit | _Cancel | None] = queue.Queue()
        self.cancels: dict[str, tuple[str, int]] = {}  # cancel's odno -> (order's, ref)
        self.awaiting_close: dict[str, float] = {}  # order_no -> monotonic deadline
        self.cancel_retries: list[tuple[float, _Cancel]] = []  # (due, job): worker thread only
        self.subscribed_at: float | None = None  # when the open subscribe went out
        self.subscribe_answer_s = SUBSCRIBE_ANSWER_S
        self.keys: dict[str, tuple[str, str]] = {}  # tr_id -> (key, iv) of this session
        self.rows: tuple[float, str, list[wire.OrderRow]] | None = None
        self.closed = False
        self.down_since: float | None = None  # REST transport failing since (monotonic)
        self.ws_down_since: float | None = time.monotonic()
        self.counters = {"bad_frames": 0, "notices": 0, "unknown_outcomes": 0}
        self.layouts_seen: set[str] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self, ctx: zmq.Context[Any]) -> None:
        addr = f"inproc://kis-events-{next(_ids)}-{id(self)}"
        self.pull = ctx.socket(zmq.PAIR)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.bind(addr)
        self.push = ctx.socket(zmq.PAIR)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.setsockopt(zmq.SNDHWM, 16)  # wake-ups only: one pending is enough
        self.push.connect(addr)
        self.auth = KisRest(self.cfg, None, None)
        self.tokens, self.limiter = shared_state(self.cfg, self.auth)
        self.worker_rest = KisRest(self.cfg, self.tokens, self.limiter)
        self.query_rest = KisRest(self.cfg, self.tokens, self.limiter)
        self.ws_rest = KisRest(self.cfg, self.tokens, self.limiter)
        self.ledger = FillLedger(
            self.cfg.state_dir / f"ledger-{today_kst()}-{self.cfg.key_id}.jsonl"
        )
        self.worker = threading.Thread(target=self._work, name="kis-orders", daemon=True)
        self.worker.start()
        self.ws: ReconnectingWebSocket | None = None
        if self.cfg.hts_id:
            self.ws = ReconnectingWebSocket(
                "kis",
                lambda: self.cfg.ws_url,
                self._ws_open,
                self._ws_text,
                self._ws_state,
                Backoff(self.kis.ws_backoff_min_ms / 1000.0, self.kis.ws_backoff_max_ms / 1000.0),
                connect_timeout_s=self.cfg.connect_timeout_s,
                idle_timeout_s=self.kis.ws_idle_timeout_s,
            )
            self.ws.start()
        else:
            logger.warning(
                "KIS: {} is not set: no execution notices; fills are found only by "
                "reconciliation (execution.reconcile_interval_s)",
                self.kis.hts_id_env,
            )

    def close(self) -> None:
        self.closed = True
        if self.ws is not None:
            self.ws.stop()
        self.jobs.put(None)
        self.worker.join(10.0)
        for rest in (self.auth, self.worker_rest, self.query_rest, self.ws_rest):
            rest.close()
        self.ledger.close()
        self.push.close(0)
        self.pull.close(0)

    def poll_sockets(self) -> list[zmq.Socket[Any]]:
        return [self.pull]

    def handle(self, sock: zmq.Socket[Any]) -> list[AdapterEvent]:
        while True:
            try:
                sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        out: list[AdapterEvent] = []
        with self.emit_lock:
            while self.events:
                out.append(self.events.popleft())
        return out

    def _emit(self, *events: AdapterEvent) -> None:
        with self.emit_lock:
            self.events.extend(events)
            try:
                self.push.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # a wake-up is already pending (or closing)

    def broker_down_ms(self, mono: float) -> int:
        """0 while KIS answers and (with an HTS id) the notice stream is up, else ms since
        one of them stopped (for the supervisor's broker_disconnect guardrail)."""
        since = [t for t in (self.down_since, self.ws_down_since if self.ws else None) if t]
        return max(1, int((mono - min(since)) * 1000)) if since else 0

    # ------------------------------------------------------------------ orders
    def submit(self, ref: int, order: SubmitOrder) -> None:
        if self.closed:
            raise NotSent("the KIS adapter is closed")
        self.jobs.put(_Submit(ref, order, time.monotonic()))

    def cancel(self, ref: int, order_no: str) -> None:
        if self.closed:
            raise NotSent("the KIS adapter is closed")
        self.jobs.put(_Cancel(ref, order_no, time.monotonic()))

    def _work(self) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                job = None
                if not self.closed:
                    self._check_cancels()
                    self._retry_cancels()
                    self._check_subscription()
                    continue
            if job is None:
                return
            try:
                if isinstance(job, _Submit):
                    self._do_submit(job)
                else:
                    self._do_cancel(job)
            except Exception as exc:  # a bug must not kill the order thread
                logger.exception("KIS order job failed: {}", exc)
                self._emit(NoticeGap(f"KIS order job failed ({exc}): resynchronising"))
            self._check_cancels()

    def _transport(self, ok: bool) -> None:
        if ok:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.monotonic()

    def _do_submit(self, job: _Submit) -> None:
        o = job.order
        try:
            dvsn = wire.ord_dvsn(o.order_type, o.tif, self.cfg.mode)
        except wire.Unsupported as exc:
            self._emit(SubmitRejected(job.ref, "KIS_UNSUPPORTED", str(exc)))
            return
        send_by = job.queued + 0.9 * self.request_timeout_s
        side = "buy" if o.side.value == "BUY" else "sell"
        try:
            out = self.worker_rest.order_cash(side, o.symbol, o.qty, o.price, dvsn, send_by)
        except REFUSED as exc:
            self._transport(True)
            self._emit(SubmitRejected(job.ref, exc.code, exc.message))
            return
        except NotDelivered as exc:
            self._transport(False)
            self._emit(SubmitRejected(job.ref, "NOT_SENT", str(exc)))
            return
        except (OutcomeUnknown, BrokerError) as exc:
            # sent, no usable answer: unknown. Execution reconciles; never re-sent.
            self._transport(not isinstance(exc, OutcomeUnknown))
            self.counters["unknown_outcomes"] += 1
            logger.warning("KIS order {} outcome unknown: {}", o.client_order_id, exc)
            return
        self._transport(True)
        order_no = wire.norm_odno(wire.field(out, "ODNO"))
        if not order_no:
            self.counters["unknown_outcomes"] += 1
            logger.error("KIS accepted {} without an ODNO: reconciling", o.client_order_id)
            self._emit(NoticeGap("order answer without ODNO"))
            return
        branch = wire.field(out, "KRX_FWDG_ORD_ORGNO").strip()
        now_ns = time.time_ns()
        with self.ledger_lock:
            self.ledger.add_order(order_no, o.symbol, o.side, o.qty, o.price, branch, now_ns)
        self._emit(SubmitAccepted(job.ref, order_no, now_ns))

    def _do_cancel(self, job: _Cancel) -> None:
        order_no = wire.norm_odno(job.order_no)
        deadline = job.queued + self.cfg.order_timeout_s
        with self.ledger_lock:
            info = self.ledger.orders.get(order_no)
            branch = info.branch if info else ""
        try:
            if not branch:
                rows = self.worker_rest.daily_ccld(today_kst(), deadline)
                branch = next((r.branch for r in rows if r.order_no == order_no), "")
            out = self.worker_rest.cancel(order_no, branch, deadline)
        except REFUSED as exc:
            self._transport(True)
            self._emit(CancelRejected(job.ref, job.order_no, exc.code, exc.message))
            return
        except (NotDelivered, OutcomeUnknown, BrokerError) as exc:
            self._transport(not isinstance(exc, NotDelivered | OutcomeUnknown))
            first = job.first or job.queued
            if time.monotonic() - first < CANCEL_RETRY_FOR_S:
                logger.warning("KIS cancel of {} got no answer ({}): again", job.order_no, exc)
                retry = _Cancel(job.ref, job.order_no, 0.0, first)
                self.cancel_retries.append((time.monotonic() + CANCEL_RETRY_EVERY_S, retry))
            else:
                code = exc.code if isinstance(exc, BrokerError) else "NOT_SENT"
                self._emit(CancelRejected(job.ref, job.order_no, code, f"no answer: {exc}"))
            return
        self._transport(True)
        cancel_no = wire.norm_odno(wire.field(out, "ODNO"))
        with self.emit_lock:
            if cancel_no:
                self.cancels[cancel_no] = (order_no, job.ref)
            self.awaiting_close[order_no] = time.monotonic() + self.kis.cancel_confirm_ms / 1e3

    def _retry_cancels(self) -> None:
        now = time.monotonic()
        due = [job for t, job in self.cancel_retries if t <= now]
        self.cancel_retries = [(t, job) for t, job in self.cancel_retries if t > now]
        for job in due:
            self._do_cancel(dataclasses.replace(job, queued=time.monotonic()))

    def _check_cancels(self) -> None:
        """A cancel KIS accepted but no notice confirmed: ask execution to reconcile."""
        now = time.monotonic()
        with self.emit_lock:
            late = [o for o, t in self.awaiting_close.items() if now > t]
            for order_no in late:
                del self.awaiting_close[order_no]
        for order_no in late:
            self._emit(NoticeGap(f"cancel of {order_no} not confirmed by a notice"))

    # ------------------------------------------------------------------ WebSocket
    def _ws_open(self, ws: websocket.WebSocket) -> None:
        approval = self.ws_rest.approval_key()
        self.keys.clear()  # keys are per session (5.3)
        ws.send(wire.subscribe_message(approval, wire.NOTICE_TR[self.cfg.mode], self.cfg.hts_id))
        self.subscribed_at = time.monotonic()

    def _check_subscription(self) -> None:
        """Connected, subscribed, and no answer: drop the session (it reconnects)."""
        sent, limit = self.subscribed_at, self.subscribe_answer_s
        if self.ws is not None and sent is not None and time.monotonic() - sent > limit:
            self.subscribed_at = None
            logger.warning("KIS notice subscription unanswered for {:g}s", limit)
            self.ws.drop()

    def _ws_state(self, up: bool, detail: str) -> None:
        if not up:
            self.ws_down_since = self.ws_down_since or time.monotonic()
            logger.warning("KIS notice stream down: {}", detail)

    def _ws_text(self, ws: websocket.WebSocket, text: str) -> None:
        try:
            frame = wire.parse_frame(text)
        except wire.FrameError as exc:
            self._bad_frame(str(exc))
            return
        if isinstance(frame, wire.Control):
            self._control(ws, frame, text)
            return
        if frame.tr_id not in wire.NOTICE_TR.values():
            return  # market data belongs to the observer
        payload = frame.payload
        try:
            if frame.encrypted:
                key_iv = self.keys.get(frame.tr_id)
                if key_iv is None:
                    raise wire.FrameError(f"encrypted {frame.tr_id} before its key arrived")
                payload = wire.decrypt(key_iv[0], key_iv[1], payload)
            notices = [wire.parse_notice(r) for r in wire.records(payload, frame.count)]
        except (wire.FrameError, BadResponse) as exc:
            self._bad_frame(str(exc))
            return
        for n in notices:
            self._notice(n)

    def _control(self, ws: websocket.WebSocket, c: wire.Control, text: str) -> None:
        if c.tr_id == "PINGPONG":
            ws.pong(text)  # OTA answers with a pong frame; python-kis echoes text (5.8)
            return
        if c.tr_id in wire.NOTICE_TR.values():
            if c.rt_cd == "0":
                if c.key and c.iv:
                    self.keys[c.tr_id] = (c.key, c.iv)
                if c.msg1.upper().startswith("UNSUB"):
                    return
                logger.info("KIS execution notices subscribed ({} {})", c.msg_cd, c.msg1)
                self.subscribed_at = None
                # live again: whatever happened while down is recovered by a reconcile
                self.ws_down_since = None
                self._emit(NoticeGap("KIS notice stream (re)subscribed: resynchronising"))
                return
            if c.msg_cd == "OPSP0002":  # already subscribed: keep the keys we have
                self.subscribed_at = None
                return
        if c.rt_cd not in ("", "0"):
            # OPSP8996 (key in use elsewhere), OPSP0008 (registrations full), ...: a new session
            raise RuntimeError(f"KIS websocket refused: {c.msg_cd} {c.msg1}")

    def _bad_frame(self, detail: str) -> None:
        self.counters["bad_frames"] += 1
        logger.warning("KIS bad notice frame: {}", detail)
        self._emit(NoticeGap(f"unreadable KIS notice ({detail}): resynchronising"))

    def _notice(self, n: wire.Notice) -> None:
        self.counters["notices"] += 1
        if n.layout not in self.layouts_seen:
            self.layouts_seen.add(n.layout)
            logger.info("KIS execution notice layout {} (docs/brokers/kis.md)", n.layout)
        if n.is_fill:
            self._fill_notice(n)
            return
        with self.emit_lock:
            mine = self.cancels.get(n.order_no)
        target = mine[0] if mine else n.orig_order_no if n.rctf_cls == "2" else ""
        if n.refused:
            if target and mine:
                self._emit(CancelRejected(mine[1], target, "REFUSED", "cancel refused (notice)"))
                with self.emit_lock:
                    self.awaiting_close.pop(target, None)
            elif not target:
                self._close(n.order_no, "canceled", "refused by the exchange (notice)")
            return
        if n.acpt_yn == "3" and not target:
            self._close(n.order_no, "expired", "IOC/FOK remainder canceled (notice)")
        elif target and n.acpt_yn == "2":
            self._close(target, "canceled", "canceled (notice)")

    def _close(self, order_no: str, status: str, reason: str) -> None:
        with self.ledger_lock:
            info = self.ledger.orders.get(order_no)
            leaves = info.leaves if info else 0
        with self.emit_lock:
            self.awaiting_close.pop(order_no, None)
        self._emit(OrderClosed(order_no, status, leaves, reason))

    def _fill_notice(self, n: wire.Notice) -> None:
        try:
            ts_ns = kst_ns(today_kst(), n.hhmmss)
        except ValueError:
            ts_ns = time.time_ns()
        with self.ledger_lock:
            info = self.ledger.orders.get(n.order_no)
            if info is None:  # the notice beat the order answer, or an order made elsewhere
                side = n.side or wire.Side.BUY
                info = self.ledger.add_order(
                    n.order_no, n.symbol, side, n.order_qty, n.order_price, "", ts_ns
                )
            fill, ambiguous = self.ledger.notice_fill(n.order_no, n.qty, n.price, ts_ns, n.hhmmss)
            leaves = info.leaves
        if fill is not None:
            self._emit(Fill(n.order_no, fill.fill_no, fill.qty, fill.price, leaves, ts_ns))
        if ambiguous:
            self._emit(
                NoticeGap(f"fill notice for {n.order_no} in the same second as a query: checking")
            )

    # ------------------------------------------------------------------ queries
    def _deadline(self, timeout: float) -> float:
        """Queries get at least kis.query_timeout_ms: paging at paper's 1 request/s takes
        longer than an order answer may."""
        return time.monotonic() + max(timeout, self.kis.query_timeout_ms / 1000.0)

    def _rows(self, timeout: float, reuse: bool) -> tuple[str, list[wire.OrderRow]]:
        """(KST HHMMSS the query started, today's rows); reuses rows up to 1 s old."""
        cached, self.rows = self.rows, None
        if reuse and cached is not None and time.monotonic() - cached[0] < ROWS_FRESH_S:
            return cached[1], cached[2]  # the rows orders_today just read, used once
        as_of = now_kst().strftime("%H%M%S")
        try:
            rows = self.query_rest.daily_ccld(today_kst(), self._deadline(timeout))
        except (BrokerError, TransportError) as exc:
            self._transport(not isinstance(exc, TransportError))
            raise BrokerUnavailable(f"KIS inquire-daily-ccld: {exc}") from None
        self._transport(True)
        if not reuse:
            self.rows = (time.monotonic(), as_of, rows)  # for the fills_today that follows
        return as_of, rows

    def _known(self, r: wire.OrderRow) -> OrderInfo:
        try:
            # ORD_TMD is whole seconds: the order arrived within [T, T+1); T+0.5 halves the
            # worst error execution's matching window has to absorb
            ts_ns = kst_ns(r.day, r.hhmmss) + 500_000_000
        except ValueError:
            ts_ns = time.time_ns()
        return self.ledger.add_order(r.order_no, r.symbol, r.side, r.qty, r.price, r.branch, ts_ns)

    def orders_today(self, timeout: float) -> list[BrokerOrder]:
        _, rows = self._rows(timeout, reuse=False)
        out: list[BrokerOrder] = []
        with self.ledger_lock:
            for r in rows:
                if r.is_amendment:
                    continue  # a cancel/revise request row; its effect shows on the order
                info = self._known(r)
                out.append(
                    BrokerOrder(
                        r.order_no, r.symbol, r.side, r.qty, r.price, r.filled_qty,
                        wire.order_status(r), info.ts_ns,
                    )
                )  # fmt: skip
        return out

    def fills_today(self, timeout: float) -> list[BrokerFill]:
        as_of, rows = self._rows(timeout, reuse=True)
        # A fill only the query shows happened before the query, KIS does not say when. It is
        # dated the second before the query's (not after the order): execution leaves fills
        # younger than its question to their notices, and none follows for this one (a late
        # notice is absorbed into it), so it must look old enough to be booked now.
        try:
            missed_ns = kst_ns(today_kst(), as_of) - 1_000_000_000
        except ValueError:
            missed_ns = time.time_ns() - 2_000_000_000
        out: list[BrokerFill] = []
        with self.ledger_lock:
            for r in rows:
                if r.is_amendment or r.filled_qty <= 0:
                    continue
                info = self._known(r)
                ts_ns = max(info.ts_ns, missed_ns)
                self.ledger.query_total(r.order_no, r.filled_qty, r.filled_amt, ts_ns, as_of)
                out.extend(
                    BrokerFill(r.order_no, f.fill_no, r.symbol, r.side, f.qty, f.price, f.ts_ns)
                    for f in info.fills
                )
        return out

    def balance(self, timeout: float) -> tuple[int, dict[str, int]]:
        try:
            result = self.query_rest.balance(self._deadline(timeout))
        except (BrokerError, TransportError) as exc:
            self._transport(not isinstance(exc, TransportError))
            raise BrokerUnavailable(f"KIS inquire-balance: {exc}") from None
        self._transport(True)
        return result

    def open_orders(self, timeout: float) -> list[dict[str, Any]]:
        """Cancellable orders (inquire-psbl-rvsecncl; paper: daily-ccld unfilled)."""
        try:
            return self.query_rest.open_orders(today_kst(), self._deadline(timeout))
        except (BrokerError, TransportError) as exc:
            raise BrokerUnavailable(f"KIS open orders: {exc}") from None
