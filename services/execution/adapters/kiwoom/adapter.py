"""KiwoomAdapter: the BrokerAdapter over Kiwoom's REST API and WebSocket.

Threads: submit() and cancel() put a job on a queue and return (never block, never fail
except NotSent after close()); a worker thread does the POSTs. The WebSocket thread logs in,
registers the account feeds (00 order events, 04 balance) and reads them. Both hand
AdapterEvents back through a deque and wake the execution loop with a byte on an inproc PAIR
socket it polls. The blocking queries run on the caller's thread, each thread with its own
HTTP session.

Outcomes of an order POST:
  - answered return_code 0 -> SubmitAccepted; refused (business, auth, rate limit after the
    retries) -> SubmitRejected;
  - never connected, or could not start before its send-by time -> SubmitRejected NOT_SENT;
  - read timeout, dropped connection, unparseable or server-fault answer (1999, 5xx) -> no
    event: execution marks it unknown after broker.request_timeout_ms and reconciles. Never
    re-sent, never reported rejected.
A job starts no attempt later than 0.9 x broker.request_timeout_ms after submit(), so an order
execution already reconciled as "not at the broker" cannot appear there afterwards.

WebSocket: a second session on the same app key closes the first (SYSTEM R10001, 5.7). The
adapter then waits the longest back-off before logging in again, and says so loudly: two
processes on one key would otherwise take the session from each other forever.
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

from protocol.enums import Side
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
from services.execution.adapters.common.kst import kst_ns, today_kst
from services.execution.adapters.common.wsclient import Backoff, ReconnectingWebSocket
from services.execution.adapters.kiwoom import wire
from services.execution.adapters.kiwoom.ledger import FillLedger, OrderInfo
from services.execution.adapters.kiwoom.rest import KiwoomConfig, KiwoomRest, Limits, shared_state
from services.runtime.log import logger
from services.runtime.settings import Settings

REFUSED = (Rejected, AuthError, RateLimited, TokenExpired, TokenThrottled)  # did nothing
ROWS_FRESH_S = 1.0  # fills_today right after orders_today reuses its rows
GROUP = "1"  # grp_no of the account registration
REPLACED = "R10001"  # SYSTEM: another session on this app key took over (5.7)
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


@dataclass(frozen=True)
class _Rows:
    mono: float
    orders: list[wire.OrderRow]  # ka10075 and ka10076 merged, one per order


class KiwoomAdapter(BrokerAdapter):
    name = "kiwoom"

    def __init__(self, settings: Settings, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.kw = settings.broker.kiwoom
        self.cfg = KiwoomConfig.from_settings(settings, env)
        self.request_timeout_s = settings.broker.request_timeout_ms / 1000.0
        self.events: collections.deque[AdapterEvent] = collections.deque()
        self.emit_lock = threading.Lock()
        self.ledger_lock = threading.Lock()
        self.rest_lock = threading.Lock()
        self.jobs: queue.Queue[_Submit | _Cancel | None] = queue.Queue()
        self.cancels: dict[str, tuple[str, int]] = {}  # cancel's ord_no -> (order's, ref)
        self.cancel_refs: dict[str, int] = {}  # order_no -> ref of the cancel we sent
        self.awaiting_close: dict[str, float] = {}  # order_no -> monotonic deadline
        self.closed_orders: set[str] = set()  # closed by a notice (this process)
        self.rows: _Rows | None = None
        self.closed = False
        self.down_since: float | None = None  # REST transport failing since (monotonic)
        self.ws_down_since: float | None = time.monotonic()
        self.live_holdings: dict[str, int] = {}  # from 04 (informational)
        self.counters = {
            "bad_frames": 0, "order_events": 0, "balance_events": 0, "unknown_outcomes": 0,
            "pings": 0, "sessions_replaced": 0, "other_account": 0, "logins": 0,
        }  # fmt: skip
        self.fill_forms: set[str] = set()
        self._local = threading.local()
        self._rests: list[KiwoomRest] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self, ctx: zmq.Context[Any]) -> None:
        addr = f"inproc://kiwoom-events-{next(_ids)}-{id(self)}"
        self.pull = ctx.socket(zmq.PAIR)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.bind(addr)
        self.push = ctx.socket(zmq.PAIR)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.setsockopt(zmq.SNDHWM, 16)  # wake-ups only: one pending is enough
        self.push.connect(addr)
        self.auth = KiwoomRest(self.cfg, None, None)
        self.tokens = shared_state(self.cfg, self.auth)
        self.limits = Limits(self.cfg)
        self.worker_rest = KiwoomRest(self.cfg, self.tokens, self.limits)
        self._rests.append(self.worker_rest)
        self.ledger = FillLedger(
            self.cfg.state_dir / f"ledger-{today_kst()}-{self.cfg.key_id}.jsonl"
        )
        self.worker = threading.Thread(target=self._work, name="kiwoom-orders", daemon=True)
        self.worker.start()
        self.ws = ReconnectingWebSocket(
            "kiwoom",
            lambda: self.cfg.ws_url,
            self._ws_open,
            self._ws_text,
            self._ws_state,
            Backoff(self.kw.ws_backoff_min_ms / 1000.0, self.kw.ws_backoff_max_ms / 1000.0),
            connect_timeout_s=self.cfg.connect_timeout_s,
            idle_timeout_s=self.kw.ws_idle_timeout_s,
        )
        self.ws.start()

    def close(self) -> None:
        self.closed = True
        self.ws.stop()
        self.jobs.put(None)
        self.worker.join(10.0)
        if self.kw.revoke_on_close and self.tokens.token:
            token = self.tokens.token
            try:
                self.auth.revoke(token)
                logger.info("Kiwoom access token revoked (au10002)")
            except (BrokerError, TransportError) as exc:
                logger.warning("Kiwoom token revoke failed: {}", exc)
            self.tokens.invalidate(token)
        self.auth.close()
        with self.rest_lock:
            for rest in self._rests:
                rest.close()
        self.ledger.close()
        self.push.close(0)
        self.pull.close(0)

    def _rest(self) -> KiwoomRest:
        """This thread's REST client (a requests.Session is not shared between threads)."""
        rest: KiwoomRest | None = getattr(self._local, "rest", None)
        if rest is None:
            rest = KiwoomRest(self.cfg, self.tokens, self.limits)
            self._local.rest = rest
            with self.rest_lock:
                self._rests.append(rest)
        return rest

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
        """0 while Kiwoom answers and the account feed is registered, else ms since one of
        them stopped (the supervisor's broker_disconnect guardrail)."""
        since = [t for t in (self.down_since, self.ws_down_since) if t]
        return max(1, int((mono - min(since)) * 1000)) if since else 0

    def _transport(self, ok: bool) -> None:
        if ok:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.monotonic()

    # ------------------------------------------------------------------ orders
    def submit(self, ref: int, order: SubmitOrder) -> None:
        if self.closed:
            raise NotSent("the Kiwoom adapter is closed")
        self.jobs.put(_Submit(ref, order, time.monotonic()))

    def cancel(self, ref: int, order_no: str) -> None:
        if self.closed:
            raise NotSent("the Kiwoom adapter is closed")
        self.jobs.put(_Cancel(ref, order_no, time.monotonic()))

    def _work(self) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                if not self.closed:
                    self._check_cancels()
                continue
            if job is None:
                return
            try:
                if isinstance(job, _Submit):
                    self._do_submit(job)
                else:
                    self._do_cancel(job)
            except Exception as exc:  # a bug must not kill the order thread
                logger.exception("Kiwoom order job failed: {}", exc)
                self._emit(NoticeGap(f"Kiwoom order job failed ({exc}): resynchronising"))
            self._check_cancels()

    def _do_submit(self, job: _Submit) -> None:
        o = job.order
        try:
            code = wire.trde_tp(o.order_type, o.tif)
            wire.order_body(self.cfg.exchange, o.symbol, o.qty, o.price, code)
        except wire.Unsupported as exc:
            self._emit(SubmitRejected(job.ref, "KIWOOM_UNSUPPORTED", str(exc)))
            return
        send_by = job.queued + 0.9 * self.request_timeout_s
        try:
            order_no, exchange = self.worker_rest.order(
                o.side, o.symbol, o.qty, o.price, code, send_by
            )
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
            logger.warning("Kiwoom order {} outcome unknown: {}", o.client_order_id, exc)
            return
        self._transport(True)
        if not order_no:
            self.counters["unknown_outcomes"] += 1
            logger.error("Kiwoom accepted {} without an ord_no: reconciling", o.client_order_id)
            self._emit(NoticeGap("order answer without ord_no"))
            return
        now_ns = time.time_ns()
        with self.ledger_lock:
            self.ledger.add_order(
                order_no, o.symbol, o.side, o.qty, o.price, exchange, code, now_ns
            )
        self._emit(SubmitAccepted(job.ref, order_no, now_ns))

    def _do_cancel(self, job: _Cancel) -> None:
        order_no = wire.order_no(job.order_no)
        deadline = job.queued + self.cfg.order_timeout_s
        with self.ledger_lock:
            info = self.ledger.orders.get(order_no)
            symbol, exchange = (info.symbol, info.exchange) if info else ("", "")
        with self.emit_lock:
            # the 00 confirmation may come before the answer: it must know this was asked
            self.cancel_refs[order_no] = job.ref
        try:
            if not symbol:  # not placed by this adapter today: kt10003 needs the code
                rows = self.worker_rest.open_orders(deadline)
                symbol = next((r.symbol for r in rows if r.order_no == order_no), "")
                if not symbol:
                    self._transport(True)
                    self._forget_cancel(order_no)
                    self._emit(
                        CancelRejected(job.ref, job.order_no, "NOT_OPEN", "not an open order")
                    )
                    return
            cancel_no = self.worker_rest.cancel(order_no, symbol, exchange, deadline)
        except REFUSED as exc:
            self._transport(True)
            self._forget_cancel(order_no)
            self._emit(CancelRejected(job.ref, job.order_no, exc.code, exc.message))
            return
        except NotDelivered as exc:
            self._transport(False)
            self._forget_cancel(order_no)
            self._emit(CancelRejected(job.ref, job.order_no, "NOT_SENT", str(exc)))
            return
        except (OutcomeUnknown, BrokerError) as exc:
            self._transport(not isinstance(exc, OutcomeUnknown))
            logger.warning("Kiwoom cancel of {} outcome unknown: {}", job.order_no, exc)
            self._await_close(order_no)
            return
        self._transport(True)
        with self.emit_lock:
            if cancel_no:
                self.cancels[cancel_no] = (order_no, job.ref)
        self._await_close(order_no)

    def _forget_cancel(self, order_no: str) -> None:
        with self.emit_lock:
            self.cancel_refs.pop(order_no, None)

    def _await_close(self, order_no: str) -> None:
        """Expect the 00 confirmation within cancel_confirm_ms, unless it already came."""
        with self.emit_lock:
            if order_no not in self.closed_orders:
                self.awaiting_close[order_no] = time.monotonic() + self.kw.cancel_confirm_ms / 1e3

    def _check_cancels(self) -> None:
        """A cancel Kiwoom accepted but no notice confirmed: ask execution to reconcile."""
        now = time.monotonic()
        with self.emit_lock:
            late = [o for o, t in self.awaiting_close.items() if now > t]
            for order_no in late:
                del self.awaiting_close[order_no]
        for order_no in late:
            self._emit(NoticeGap(f"cancel of {order_no} not confirmed by a notice"))

    # ------------------------------------------------------------------ WebSocket (5)
    def _ws_open(self, ws: websocket.WebSocket) -> None:
        """LOGIN (first message, with the raw token), wait for its answer, then REG the
        account feeds. Registrations do not survive a reconnect, so every session does this."""
        token = self.tokens.get()
        ws.send(wire.login_message(token))
        deadline = time.monotonic() + self.kw.ws_login_timeout_ms / 1000.0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("no LOGIN answer")
            try:
                text = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            if not text:
                continue
            msg = wire.parse_ws(text)
            trnm = msg["trnm"]
            if trnm == "PING":
                self._ping(ws, text)
                continue
            if trnm == "SYSTEM":
                self._system(msg)
                continue
            if trnm != "LOGIN":
                raise wire.FrameError(f"{trnm} before the LOGIN answer")
            if wire.to_int(msg.get("return_code", 0), "return_code") != 0:
                code = wire.ws_code(msg)
                if code in wire.TOKEN_CODES or not code:
                    self.tokens.invalidate(token)  # a fresh one on the next attempt
                raise RuntimeError(f"LOGIN refused: {code or '?'} {msg.get('return_msg', '')}")
            break
        self.counters["logins"] += 1
        ws.send(wire.reg_message(GROUP, [""], list(wire.ACCOUNT_TYPES)))

    def _ws_state(self, up: bool, detail: str) -> None:
        if not up:
            self.ws_down_since = self.ws_down_since or time.monotonic()
            logger.warning("Kiwoom account feed down: {}", detail)

    def _ping(self, ws: websocket.WebSocket, text: str) -> None:
        self.counters["pings"] += 1
        ws.send(text)  # echoed unchanged (5.6)

    def _system(self, msg: dict[str, Any]) -> None:
        code = str(msg.get("code", "")).strip()
        text = str(msg.get("message", "")).strip()
        if code == REPLACED:
            self.counters["sessions_replaced"] += 1
            logger.error(
                "Kiwoom SYSTEM {} {}: another session on this app key took the WebSocket; "
                "waiting the longest back-off before logging in again. Run one QTS "
                "execution per Kiwoom app key.",
                code,
                text,
            )
            self.ws.backoff.attempt = 64  # next() gives max_s
            raise RuntimeError(f"session replaced by another login ({code})")
        logger.warning("Kiwoom SYSTEM {} {}", code, text)  # never echoed (5.7)

    def _ws_text(self, ws: websocket.WebSocket, text: str) -> None:
        try:
            msg = wire.parse_ws(text)
        except wire.FrameError as exc:
            self._bad_frame(str(exc))
            return
        trnm = msg["trnm"]
        if trnm == "PING":
            self._ping(ws, text)
        elif trnm == "REAL":
            self._real(msg)
        elif trnm == "SYSTEM":
            self._system(msg)
        elif trnm in ("REG", "REMOVE"):
            if str(msg.get("return_code", "0")).strip() not in ("0", ""):
                raise RuntimeError(f"Kiwoom {trnm} refused: {msg.get('return_msg', '')}")
            if trnm == "REG":
                logger.info("Kiwoom account feed registered (00, 04)")
                # live again: whatever happened while down is recovered by a reconcile
                self.ws_down_since = None
                self._emit(NoticeGap("Kiwoom account feed (re)registered: resynchronising"))
        elif trnm == "LOGIN":
            if str(msg.get("return_code", "0")).strip() not in ("0", ""):
                raise RuntimeError(f"Kiwoom LOGIN refused: {msg.get('return_msg', '')}")
        else:
            logger.debug("Kiwoom websocket {} ignored", trnm)

    def _real(self, msg: dict[str, Any]) -> None:
        try:
            entries = wire.real_entries(msg)
        except wire.FrameError as exc:
            self._bad_frame(str(exc))
            return
        for entry in entries:
            try:
                if entry.type == "00":
                    self._order_event(wire.parse_order_event(entry.values))
                elif entry.type == "04":
                    self._balance_event(wire.parse_balance_event(entry.values))
                # market data (0B, 0D, ...) belongs to the observer
            except (wire.FrameError, BadResponse) as exc:
                self._bad_frame(f"{entry.type}: {exc}")

    def _bad_frame(self, detail: str) -> None:
        self.counters["bad_frames"] += 1
        logger.warning("Kiwoom bad websocket frame: {}", detail)
        self._emit(NoticeGap(f"unreadable Kiwoom message ({detail}): resynchronising"))

    def _balance_event(self, b: wire.BalanceEvent) -> None:
        self.counters["balance_events"] += 1
        self.live_holdings[b.symbol] = b.qty  # fills come from 00; this is for operators

    def _order_event(self, e: wire.OrderEvent) -> None:
        self.counters["order_events"] += 1
        if self.cfg.account and e.account and e.account != self.cfg.account:
            self.counters["other_account"] += 1
            logger.warning("Kiwoom 00 for another account ignored (order {})", e.order_no)
            return
        if e.is_cancel:
            self._cancel_event(e)
            return
        if e.is_modify:
            if e.status == "확인":  # the remainder moved to a new order number
                self._emit(NoticeGap(f"order {e.orig_order_no} modified into {e.order_no}: resync"))
            return
        try:
            ts_ns = kst_ns(today_kst(), e.hhmmss)
        except ValueError:
            ts_ns = time.time_ns()
        with self.ledger_lock:
            info = self._known(e.order_no, e.symbol, e.side, e.order_qty, e.order_price, ts_ns)
        if e.status == "체결":
            self._fill_event(e, info, ts_ns)
        elif e.status == "거부":
            self._close(e.order_no, "canceled", f"rejected: {e.reject_reason or '?'}")
        elif e.status == "취소":  # the order itself reported cancelled (IOC/FOK remainder)
            self._close(e.order_no, "", "canceled (notice)")

    def _known(
        self, order_no: str, symbol: str, side: Side | None, qty: int, price: int, ts_ns: int
    ) -> OrderInfo:
        info = self.ledger.orders.get(order_no)
        if info is None:  # the notice beat the order answer, or an order made elsewhere
            info = self.ledger.add_order(
                order_no, symbol, side or Side.BUY, qty, price, "", "", ts_ns
            )
        return info

    def _fill_event(self, e: wire.OrderEvent, info: OrderInfo, ts_ns: int) -> None:
        form = e.fill_form
        if form and form not in self.fill_forms:
            self.fill_forms.add(form)
            logger.info("Kiwoom 00 fill fields read as {} (kiwoom.md 5.4)", form)
        with self.ledger_lock:
            # 900/902 missing: this fill's own quantity on top of what is known
            cum = e.filled if e.order_qty > 0 else info.filled + (e.unit_qty or e.fill_qty)
            fill = self.ledger.fill_to(
                e.order_no, cum, e.filled_amount, e.unit_qty, e.unit_price,
                e.fill_price or e.unit_price, ts_ns, "notice",
            )  # fmt: skip
            leaves = e.unfilled if e.order_qty > 0 else info.leaves
        if fill is not None:
            self._emit(Fill(e.order_no, fill.fill_no, fill.qty, fill.price, leaves, ts_ns))

    def _cancel_event(self, e: wire.OrderEvent) -> None:
        with self.emit_lock:
            mine = self.cancels.get(e.order_no)
        target = mine[0] if mine else e.orig_order_no
        if not target:
            return
        if e.status == "거부":
            with self.emit_lock:
                self.awaiting_close.pop(target, None)
                ref = mine[1] if mine else self.cancel_refs.get(target)
            if ref is not None:
                self._emit(CancelRejected(ref, target, "REFUSED", e.reject_reason or "refused"))
            return
        if e.status in ("확인", "취소"):
            with self.ledger_lock:
                info = self.ledger.orders.get(target)
                partial = bool(not mine and info and 0 < e.order_qty < info.leaves)
            if partial:  # part of it cancelled by someone else (HTS): the rest still works
                self._emit(NoticeGap(f"{e.order_qty} of order {target} cancelled elsewhere"))
                return
            self._close(target, "", "canceled (notice)")

    def _close(self, order_no: str, status: str, reason: str) -> None:
        """status "": canceled, or expired for an IOC/FOK order nobody asked to cancel."""
        with self.emit_lock:
            self.awaiting_close.pop(order_no, None)
            asked = self.cancel_refs.pop(order_no, None) is not None
            self.closed_orders.add(order_no)
        with self.ledger_lock:
            info = self.ledger.orders.get(order_no)
            leaves = info.leaves if info else 0
            ioc = bool(info and info.trde_tp in wire.IOC_FOK_TRDE_TP)
        if not status:
            status = "expired" if ioc and not asked else "canceled"
        self._emit(OrderClosed(order_no, status, leaves, reason))

    # ------------------------------------------------------------------ queries
    def _order_rows(self, timeout: float, reuse: bool) -> list[wire.OrderRow]:
        """Today's orders, one row each: ka10075 (open) merged with ka10076 (filled)."""
        mono = time.monotonic()
        rows = self.rows
        if reuse and rows is not None and mono - rows.mono < ROWS_FRESH_S:
            return rows.orders
        rest = self._rest()
        try:
            open_rows = rest.open_orders(mono + timeout)
            fill_rows = rest.filled_orders(mono + timeout)
        except (BrokerError, TransportError) as exc:
            self._transport(not isinstance(exc, TransportError))
            raise BrokerUnavailable(f"Kiwoom order queries: {exc}") from None
        self._transport(True)
        merged: dict[str, wire.OrderRow] = {}
        for r in fill_rows:
            if r.is_cancel:
                continue
            old = merged.get(r.order_no)
            if old is None or r.filled > old.filled:  # several rows: keep the largest total
                merged[r.order_no] = r
        for r in open_rows:
            if r.is_cancel:
                continue
            old = merged.get(r.order_no)
            filled = max(r.filled, old.filled if old else 0)
            merged[r.order_no] = dataclasses.replace(
                r,
                filled=filled,
                avg_fill_price=old.avg_fill_price if old else 0,
                filled_amount=r.filled_amount if filled == r.filled else 0,
            )
        open_nos = {r.order_no for r in open_rows if r.unfilled > 0}
        out = [
            r if r.order_no in open_nos else dataclasses.replace(r, unfilled=0)
            for r in merged.values()
        ]
        self.rows = _Rows(mono, out)
        return out

    def _learn(self, r: wire.OrderRow) -> OrderInfo:
        try:
            ts_ns = kst_ns(today_kst(), r.hhmmss)
        except ValueError:
            ts_ns = time.time_ns()
        return self.ledger.add_order(r.order_no, r.symbol, r.side, r.qty, r.price, "", "", ts_ns)

    def orders_today(self, timeout: float) -> list[BrokerOrder]:
        """Open orders (ka10075) and orders with fills (ka10076). Kiwoom lists a cancelled or
        rejected order without fills in neither, so an order this adapter placed today that
        is in neither list, and is older than kiwoom.order_seen_grace_ms, is reported
        canceled (docs/brokers/kiwoom.md)."""
        rows = self._order_rows(timeout, reuse=False)
        now_ns = time.time_ns()
        grace_ns = self.kw.order_seen_grace_ms * 1_000_000
        out: list[BrokerOrder] = []
        with self.ledger_lock:
            seen = set()
            for r in rows:
                seen.add(r.order_no)
                info = self._learn(r)
                if r.filled >= r.qty > 0:
                    status = "filled"
                elif r.unfilled > 0:
                    status = "open"
                elif (
                    info.trde_tp in wire.IOC_FOK_TRDE_TP
                    or "IOC" in r.trade_type
                    or ("FOK" in r.trade_type)
                ):
                    status = "expired"
                else:
                    status = "canceled"
                out.append(
                    BrokerOrder(
                        r.order_no, r.symbol, r.side, r.qty, r.price, r.filled, status,
                        info.ts_ns,
                    )
                )  # fmt: skip
            for info in self.ledger.orders.values():
                if info.order_no in seen or now_ns - info.ts_ns < grace_ns:
                    continue
                status = "expired" if info.trde_tp in wire.IOC_FOK_TRDE_TP else "canceled"
                if info.filled >= info.qty > 0:
                    status = "filled"
                out.append(
                    BrokerOrder(
                        info.order_no, info.symbol, info.side, info.qty, info.price, info.filled,
                        status, info.ts_ns,
                    )
                )  # fmt: skip
        return out

    def fills_today(self, timeout: float) -> list[BrokerFill]:
        """One fill per notice told, plus one up to the total ka10076 shows when notices were
        lost (priced from the average fill price)."""
        rows = self._order_rows(timeout, reuse=True)
        now_ns = time.time_ns()
        out: list[BrokerFill] = []
        with self.ledger_lock:
            for r in rows:
                if r.filled <= 0:
                    continue
                info = self._learn(r)
                # the exact amount when ka10075 has it, else from the average (rounded)
                amount = r.filled_amount or r.avg_fill_price * r.filled
                self.ledger.fill_to(
                    r.order_no, r.filled, amount, 0, 0, r.avg_fill_price or r.price, now_ns,
                    "query",
                )  # fmt: skip
                out.extend(
                    BrokerFill(r.order_no, f.fill_no, r.symbol, r.side, f.qty, f.price, f.ts_ns)
                    for f in info.fills
                )
        return out

    def balance(self, timeout: float) -> tuple[int, dict[str, int]]:
        """(예수금 entr from kt00001, {symbol: shares} from kt00018)."""
        deadline = time.monotonic() + timeout
        rest = self._rest()
        try:
            deposit = rest.deposit(deadline)
            holdings = rest.holdings(deadline)
        except (BrokerError, TransportError) as exc:
            self._transport(not isinstance(exc, TransportError))
            raise BrokerUnavailable(f"Kiwoom balance: {exc}") from None
        self._transport(True)
        return deposit.cash, holdings

    def buying_power(self, timeout: float) -> int:
        """주문가능금액 (kt00001 ord_alow_amt)."""
        try:
            return self._rest().deposit(time.monotonic() + timeout).orderable
        except (BrokerError, TransportError) as exc:
            raise BrokerUnavailable(f"Kiwoom deposit: {exc}") from None
