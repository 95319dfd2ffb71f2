"""A fake KIS Open API for tests: a real HTTP server and a real WebSocket server on 127.0.0.1,
written from the documented protocol (shared/brokers/kis.md), not from our client.

REST: token (once a minute, EGW00133 in the token endpoint's own error shape), approval key,
order-cash (buy/sell tr_ids per mode), order-rvsecncl (cancel), inquire-daily-ccld (tr_cont
paging, paper 15 rows), inquire-psbl-rvsecncl (live only), inquire-balance, inquire-psbl-order,
EGW00201 as HTTP 500 when over the per-second limit or on demand, EGW00123 for an expired
token. WebSocket: subscribe with the approval key, one session per app key (OPSP8996), AES-256-
CBC execution notices (H0STCNI0 live / H0STCNI9 paper) in the 26- or 23-field layouts,
PINGPONG. Knobs let a test delay an order answer after accepting it, drop the socket, send
malformed frames, or stop notices.
"""

from __future__ import annotations

import itertools
import json
import queue
import secrets
import socket
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from services.brokers_md import kis as md
from services.execution.adapters.common.kst import now_kst
from services.execution.adapters.kis import wire
from tests.brokers.kis_notices import md_frame, notice_fields

APP_KEY = "PSfakeappkey0123456789abcdefghijklmn"  # 36 chars
APP_SECRET = "s" * 180
ACCOUNT = "50012345-01"
HTS_ID = "qtstester"
# a second app key (another KIS app registration) for a market-data session of its own
MD_APP_KEY = "PSfakemdkey00123456789abcdefghijklmn"
MD_APP_SECRET = "m" * 180
MD_TRS = (md.TRADE_TR, md.BOOK_TR)


@dataclass
class Order:
    odno: str
    orig: str  # set on a cancel row
    side: str  # "01" sell / "02" buy
    symbol: str
    qty: int
    price: int
    dvsn: str
    tmd: str
    filled: int = 0
    amount: int = 0
    canceled: int = 0
    rejected: int = 0

    @property
    def remaining(self) -> int:
        if self.orig:
            return 0
        return self.qty - self.filled - self.canceled - self.rejected


@dataclass
class Knobs:
    order_delay_s: float = 0.0  # accept, then answer this late
    rate_limit_next: int = 0  # this many trading requests get EGW00201
    reject_next: tuple[str, str] | None = None  # (msg_cd, msg1) for the next order
    notices: bool = True  # push execution notices
    layout: str = "26a"  # 26a, 26b or 23
    fail_approval: bool = False
    ignore_subscribe: bool = False  # never answer a subscribe (a stuck session)
    drop_next_cancels: int = 0  # drop the connection without doing or answering anything
    fill_before_answer: int = 0  # fill this many of the next order before answering it
    token_broken: bool = False  # the token endpoint answers an HTML error page


@dataclass
class Stats:
    tokens_issued: int = 0
    token_refused: int = 0
    rate_limited: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    ws_connects: int = 0
    ws_refused: int = 0
    subscribes: int = 0
    pongs: int = 0  # PINGPONG echoed as text
    pong_frames: list[bytes] = field(default_factory=list)  # pong frames received (OTA form)
    md_subscribes: int = 0
    md_refused: int = 0
    order_posts: int = 0
    arrivals: list[float] = field(default_factory=list)  # time.time() of trading requests


class FakeKis:
    def __init__(
        self,
        mode: str = "paper",
        rate_per_s: int = 1000,
        token_interval_s: float = 60.0,
        token_ttl_s: float = 86_400.0,
        page_size: int | None = None,
        cash: int = 100_000_000,
        holdings: dict[str, int] | None = None,
        auto_fill: bool = False,  # fill every order by itself: first half, then the rest
        keep_open_every: int = 0,  # auto_fill: every Nth order gets only its first half
    ) -> None:
        self.mode = mode
        self.rate_per_s = rate_per_s
        self.token_interval_s = token_interval_s
        self.token_ttl_s = token_ttl_s
        self.page_size = page_size or (15 if mode == "paper" else 100)
        self.cash = cash
        self.holdings = dict(holdings or {})
        self.knobs = Knobs()
        self.stats = Stats()
        self.lock = threading.RLock()
        self.orders: dict[str, Order] = {}
        self.odnos = itertools.count(117057)
        self.tokens: dict[str, float] = {}  # token -> expiry (time.time)
        self.last_token_at = 0.0
        self.app_keys = {APP_KEY: APP_SECRET, MD_APP_KEY: MD_APP_SECRET}
        self.approval_keys: dict[str, str] = {}  # approval key -> app key
        self.stamps: list[float] = []
        self.ws_conns: list[ServerConnection] = []
        self.ws_keys: dict[int, tuple[str, str]] = {}  # id(conn) -> (key, iv)
        self.subscribed: dict[int, str] = {}  # id(conn) -> notice tr_id
        self.conn_app: dict[int, str] = {}  # id(conn) -> app key of its approval key
        self.md_regs: dict[int, set[tuple[str, str]]] = {}  # id(conn) -> (tr, stock code)
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.http.daemon_threads = True
        self.ws_server = serve(
            self._ws_handler, "127.0.0.1", 0, create_connection=self._connection_class()
        )
        self.threads = [
            threading.Thread(target=self.http.serve_forever, daemon=True),
            threading.Thread(target=self.ws_server.serve_forever, daemon=True),
        ]
        self.auto_fill = auto_fill
        self.keep_open_every = keep_open_every
        self.auto_filled = 0
        self.fill_counts: dict[str, int] = {}  # odno -> fills made (one notice each)
        self.to_fill: queue.Queue[str | None] = queue.Queue()
        self.stopping = threading.Event()
        if auto_fill:
            self.threads.append(threading.Thread(target=self._filler, daemon=True))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeKis:
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.to_fill.put(None)
        self.drop_ws()
        self.ws_server.shutdown()
        self.http.shutdown()
        self.http.server_close()
        for t in self.threads:
            t.join(5)

    def __enter__(self) -> FakeKis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_server.socket.getsockname()[1]}"

    def env(self) -> dict[str, str]:
        return {
            "KIS_APP_KEY": APP_KEY,
            "KIS_APP_SECRET": APP_SECRET,
            "KIS_ACCOUNT": ACCOUNT,
            "KIS_HTS_ID": HTS_ID,
        }

    def settings_overrides(self) -> dict[str, Any]:
        """broker.kis keys pointing the adapter here."""
        prefix = "live" if self.mode == "live" else "paper"
        return {
            f"{prefix}_rest_url": self.rest_url,
            f"{prefix}_ws_url": self.ws_url,
            "ws_path": "/tryitout",
        }

    # ------------------------------------------------------------------ test controls
    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def fill(self, odno: str, qty: int, price: int, notify: bool = True) -> None:
        with self.lock:
            o = self.orders[odno]
            if qty > o.remaining:
                raise ValueError(f"fill {qty} > remaining {o.remaining}")
            o.filled += qty
            o.amount += qty * price
            self.fill_counts[odno] = self.fill_counts.get(odno, 0) + 1
            sign = 1 if o.side == "02" else -1
            self.holdings[o.symbol] = self.holdings.get(o.symbol, 0) + sign * qty
            self.cash -= sign * qty * price
        if notify:
            self._notice(o, cntg_yn="2", qty=qty, price=price)

    def _filler(self) -> None:
        """auto_fill: each order filled in two parts at its own price, shortly after (every
        keep_open_every-th only its first part: it stays open)."""
        while True:
            odno = self.to_fill.get()
            if odno is None or self.stopping.wait(0.05):
                return
            with self.lock:
                o = self.orders[odno]
                first = o.remaining // 2
                price = o.price or 70_000
                self.auto_filled += 1
                keep = self.keep_open_every and self.auto_filled % self.keep_open_every == 0
            for part in (first, 0 if keep else o.remaining - first):
                with self.lock:
                    qty = min(part, o.remaining)
                if qty > 0:
                    try:
                        self.fill(odno, qty, price)
                    except ValueError:  # a cancel took the remainder meanwhile
                        pass

    def order(self, odno: str) -> Order:
        with self.lock:
            return self.orders[odno]

    def order_nos(self) -> list[str]:
        with self.lock:
            return [o.odno for o in self.orders.values() if not o.orig]

    def drop_ws(self) -> None:
        """Close every WebSocket connection abruptly (the client must reconnect)."""
        with self.lock:
            conns = list(self.ws_conns)
        for conn in conns:
            try:
                conn.socket.shutdown(socket.SHUT_RDWR)  # wakes the reader, unlike close()
            except OSError:
                pass

    def send_raw(self, text: str) -> None:
        for conn in self._subscribers():
            conn.send(text)

    def pingpong(self) -> None:
        stamp = now_kst().strftime("%Y%m%d%H%M%S")
        self.send_raw(json.dumps({"header": {"tr_id": "PINGPONG", "datetime": stamp}}))

    def ws_connected(self) -> int:
        with self.lock:
            return len(self.subscribed)

    # ------------------------------------------------------------------ notices (5.7)
    def notice_fields(self, o: Order, cntg_yn: str, qty: int, price: int, **kw: str) -> list[str]:
        cano = ACCOUNT.replace("-", "")[:8]
        f = {
            "CUST_ID": HTS_ID, "ACNT_NO": cano + "01", "ODER_NO": o.odno, "OODER_NO": o.orig,
            "SELN_BYOV_CLS": o.side, "RCTF_CLS": kw.get("rctf", "2" if o.orig else "0"),
            "ODER_KIND": o.dvsn, "ODER_COND": "0", "STCK_SHRN_ISCD": o.symbol,
            "CNTG_QTY": str(qty), "CNTG_UNPR": str(price),
            "STCK_CNTG_HOUR": now_kst().strftime("%H%M%S"), "RFUS_YN": kw.get("rfus", "0"),
            "CNTG_YN": cntg_yn, "ACPT_YN": kw.get("acpt", "2"), "BRNC_NO": "06010",
            "ODER_QTY": str(o.qty), "ACNT_NAME": "홍길동", "ORD_COND_PRC": "0",
            "ORD_EXG_GB": "1", "POPUP_YN": "N", "FILLER": "", "CRDT_CLS": "10",
            "CRDT_LOAN_DATE": "", "CNTG_ISNM40": "삼성전자", "ODER_PRC": str(o.price),
            "ACNT_NO2": cano + "01", "CNTG_ISNM": "삼성전자",
        }  # fmt: skip
        return notice_fields(f, self.knobs.layout)

    def _notice(self, o: Order, cntg_yn: str, qty: int, price: int, **kw: str) -> None:
        if not self.knobs.notices:
            return
        plain = "^".join(self.notice_fields(o, cntg_yn, qty, price, **kw))
        for conn in self._subscribers(notices_only=True):
            key, iv = self.ws_keys[id(conn)]
            tr = self.subscribed[id(conn)]
            try:
                conn.send(f"1|{tr}|001|{wire.encrypt(key, iv, plain)}")
            except ConnectionClosed:
                pass

    def _subscribers(self, notices_only: bool = False) -> list[ServerConnection]:
        with self.lock:
            if notices_only:
                return [c for c in self.ws_conns if id(c) in self.subscribed]
            return [c for c in self.ws_conns if self._registered(c)]

    # ------------------------------------------------------------------ WebSocket server
    def _ws_handler(self, conn: ServerConnection) -> None:
        with self.lock:
            self.stats.ws_connects += 1
            self.ws_conns.append(conn)
        try:
            for raw in conn:
                msg = json.loads(raw)
                header = msg.get("header", {})
                if header.get("tr_id") == "PINGPONG":
                    self.stats.pongs += 1
                    continue
                self._ws_subscribe(conn, msg)
        except (ConnectionClosed, OSError, ValueError):
            pass
        finally:
            with self.lock:
                self.ws_conns.remove(conn)
                self.subscribed.pop(id(conn), None)
                self.ws_keys.pop(id(conn), None)
                self.conn_app.pop(id(conn), None)
                self.md_regs.pop(id(conn), None)

    def _ws_subscribe(self, conn: ServerConnection, msg: dict[str, Any]) -> None:
        if self.knobs.ignore_subscribe:
            return
        header, body = msg.get("header", {}), msg.get("body", {}).get("input", {})
        tr, key = body.get("tr_id", ""), body.get("tr_key", "")

        def answer(rt: str, cd: str, text: str, output: dict[str, str] | None = None) -> None:
            out: dict[str, Any] = {"rt_cd": rt, "msg_cd": cd, "msg1": text}
            if output:
                out["output"] = output
            conn.send(json.dumps({"header": {"tr_id": tr, "tr_key": key, "encrypt": "N"},
                                  "body": out}))  # fmt: skip

        app = self.approval_keys.get(str(header.get("approval_key")))
        if app is None:
            answer("1", "OPSP8993", "invalid approval : NOT FOUND")
            return
        expected = "H0STCNI0" if self.mode == "live" else "H0STCNI9"
        if tr not in (expected, *MD_TRS):
            answer("1", "OPSP8991", "invalid tr_id")
            return
        if key != HTS_ID if tr == expected else not (len(key) == 6 and key.isalnum()):
            answer("1", "OPSP8992", "invalid tr_key")
            return
        with self.lock:
            self.conn_app.setdefault(id(conn), app)
            in_use = any(
                c is not conn and self.conn_app.get(id(c)) == app and self._registered(c)
                for c in self.ws_conns
            )
            if in_use:
                self.stats.ws_refused += 1
        if in_use:
            conn.send(json.dumps({"header": {"tr_id": "(null)", "tr_key": key, "encrypt": "N"},
                                  "body": {"rt_cd": "9", "msg_cd": "OPSP8996",
                                           "msg1": "ALREADY IN USE appkey"}}))  # fmt: skip
            return
        if tr in MD_TRS:
            self._md_register(conn, header, tr, key, answer)
            return
        alphabet = string.ascii_letters + string.digits
        aes_key = "".join(secrets.choice(alphabet) for _ in range(32))
        aes_iv = "".join(secrets.choice(alphabet) for _ in range(16))
        with self.lock:
            self.ws_keys[id(conn)] = (aes_key, aes_iv)
            self.subscribed[id(conn)] = tr
            self.stats.subscribes += 1
        answer("0", "OPSP0000", "SUBSCRIBE SUCCESS", {"iv": aes_iv, "key": aes_key})

    def _connection_class(self) -> type[ServerConnection]:
        fake = self

        class Connection(ServerConnection):
            def acknowledge_pings(self, data: bytes) -> None:
                with fake.lock:
                    fake.stats.pong_frames.append(data)
                super().acknowledge_pings(data)

        return Connection

    def _registered(self, conn: ServerConnection) -> bool:
        return id(conn) in self.subscribed or bool(self.md_regs.get(id(conn)))

    def _md_register(
        self,
        conn: ServerConnection,
        header: dict[str, Any],
        tr: str,
        key: str,
        answer: Callable[[str, str, str], None],
    ) -> None:
        """Market-data (un)registration: 41 per session with the notice (OPSP0008 beyond)."""
        with self.lock:
            regs = self.md_regs.setdefault(id(conn), set())
            count = len(regs) + (1 if id(conn) in self.subscribed else 0)
            if header.get("tr_type") == "2":
                if (tr, key) not in regs:
                    reply = ("1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)")
                else:
                    regs.discard((tr, key))
                    reply = ("0", "OPSP0001", "UNSUBSCRIBE SUCCESS")
            elif (tr, key) in regs:
                reply = ("1", "OPSP0002", "ALREADY IN SUBSCRIBE")
            elif count >= md.MAX_REGISTRATIONS:
                self.stats.md_refused += 1
                reply = ("1", "OPSP0008", "MAX SUBSCRIBE OVER")
            else:
                regs.add((tr, key))
                self.stats.md_subscribes += 1
                reply = ("0", "OPSP0000", "SUBSCRIBE SUCCESS")
        answer(*reply)

    # ------------------------------------------------------------------ market data (5.5, 5.6)
    def md_registered(self) -> set[tuple[str, str]]:
        with self.lock:
            return set().union(*self.md_regs.values()) if self.md_regs else set()

    def push_md(self, tr: str, records: list[list[str]]) -> int:
        """Send one `0|tr|count|...` frame of these records to every session registered for
        any of their stock codes; returns how many sessions got it."""
        frame = md_frame(tr, records)
        symbols = {r[0] for r in records}
        with self.lock:
            conns = [
                c for c in self.ws_conns
                if any((tr, sym) in self.md_regs.get(id(c), ()) for sym in symbols)
            ]  # fmt: skip
        sent = 0
        for conn in conns:
            try:
                conn.send(frame)
                sent += 1
            except ConnectionClosed:
                pass
        return sent

    # ------------------------------------------------------------------ HTTP server
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with self.lock:
            self.stats.requests[url.path] = self.stats.requests.get(url.path, 0) + 1
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._send(h, 500, {"rt_cd": "1", "msg_cd": "OPSQ9999", "msg1": "JSON parsing error"})
            return
        status, payload, headers = self._route(method, url.path, h.headers, query, body)
        if payload is None:
            h.close_connection = True  # dropped on purpose: no answer at all
            return
        self._send(h, status, payload, headers)

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            h.send_response(status)
            h.send_header("content-type", "application/json; charset=utf-8")
            h.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up waiting

    def _route(
        self, method: str, path: str, hdr: Any, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        if path == wire.TOKEN_PATH and method == "POST":
            return self._token(body)
        if path == wire.APPROVAL_PATH and method == "POST":
            if self.knobs.fail_approval:
                return 500, {"error_code": "EGW00002", "error_description": "서버 에러"}, {}
            app = str(body.get("appkey", ""))
            if self.app_keys.get(app) != body.get("secretkey"):
                return 403, {"error_code": "EGW00105", "error_description": "bad secretkey"}, {}
            key = secrets.token_hex(18)
            with self.lock:
                self.approval_keys[key] = app
            return 200, {"approval_key": key}, {}
        err = self._check_headers(hdr)
        if err is not None:
            return err
        tr = hdr.get("tr_id", "")
        routes = {
            (wire.ORDER_CASH_PATH, "POST"): self._order_cash,
            (wire.ORDER_RVSECNCL_PATH, "POST"): self._cancel,
            (wire.DAILY_CCLD_PATH, "GET"): self._daily_ccld,
            (wire.PSBL_RVSECNCL_PATH, "GET"): self._psbl_rvsecncl,
            (wire.BALANCE_PATH, "GET"): self._balance,
            (wire.PSBL_ORDER_PATH, "GET"): self._psbl_order,
        }
        fn = routes.get((path, method))
        if fn is None:
            return 404, {"rt_cd": "1", "msg_cd": "OPSQ0002", "msg1": "없는 서비스 코드 입니다"}, {}
        data = body if method == "POST" else query
        if method == "POST":
            bad = [k for k, v in data.items() if k != k.upper() or not isinstance(v, str)]
            if bad:
                return 200, _err("OPSQ2000", f"BODY 키는 대문자, 값은 문자열: {bad}"), {}
        return fn(tr, data, hdr)

    def _check_headers(self, hdr: Any) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        auth = hdr.get("authorization", "")
        if not auth.startswith("Bearer "):
            return 500, _err("EGW00205", "credentials_type이 유효하지 않습니다.(Bearer)"), {}
        if hdr.get("appkey") != APP_KEY or hdr.get("appsecret") != APP_SECRET:
            return 500, _err("EGW00103", "유효하지 않은 AppKey입니다."), {}
        token = auth.removeprefix("Bearer ")
        with self.lock:
            expiry = self.tokens.get(token)
            if expiry is None:
                return 500, _err("EGW00121", "유효하지 않은 token 입니다."), {}
            if expiry <= time.time():
                return 500, _err("EGW00123", "기간이 만료된 token 입니다."), {}
            now = time.time()
            self.stats.arrivals.append(now)
            self.stamps = [t for t in self.stamps if now - t < 1.0]
            if self.knobs.rate_limit_next > 0 or len(self.stamps) >= self.rate_per_s:
                self.knobs.rate_limit_next = max(0, self.knobs.rate_limit_next - 1)
                self.stats.rate_limited += 1
                return 500, _err("EGW00201", "초당 거래건수를 초과하였습니다."), {}
            self.stamps.append(now)
        return None

    def _token(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        if self.knobs.token_broken:
            return 502, None, {}
        if body.get("grant_type") != "client_credentials":
            return 403, {"error_code": "EGW00004", "error_description": "grant_type"}, {}
        if body.get("appkey") != APP_KEY or body.get("appsecret") != APP_SECRET:
            return 403, {"error_code": "EGW00103", "error_description": "bad appkey"}, {}
        with self.lock:
            now = time.time()
            if now - self.last_token_at < self.token_interval_s:
                self.stats.token_refused += 1
                text = "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"
                return 403, {"error_code": "EGW00133", "error_description": text}, {}
            self.last_token_at = now
            token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(48)
            expiry = now + self.token_ttl_s
            self.tokens[token] = expiry
            self.stats.tokens_issued += 1
        expired = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(expiry + 9 * 3600))
        return 200, {"access_token": token, "token_type": "Bearer",
                     "expires_in": int(self.token_ttl_s),
                     "access_token_token_expired": expired}, {}  # fmt: skip

    def _tr(self, what: str) -> str:
        return wire.TR_IDS[what]["live" if self.mode == "live" else "paper"]

    def _account_ok(self, data: dict[str, str]) -> bool:
        cano, prdt = ACCOUNT.split("-")
        return data.get("CANO") == cano and data.get("ACNT_PRDT_CD") == prdt

    def _order_cash(self, tr: str, data: dict[str, str], hdr: Any) -> Any:
        if tr not in (self._tr("buy"), self._tr("sell")):
            return 500, _err("EGW00213", "모의투자 TR 이 아닙니다." if self.mode == "paper"
                             else "실전투자 TR 이 아닙니다."), {}  # fmt: skip
        if not self._account_ok(data):
            return 200, _err("OPSQ2001", "계좌번호를 확인하세요"), {}
        with self.lock:
            self.stats.order_posts += 1
            if self.knobs.reject_next is not None:
                code, msg = self.knobs.reject_next
                self.knobs.reject_next = None
                return 200, _err(code, msg), {}
            odno = f"{next(self.odnos):010d}"
            o = Order(
                odno, "", "02" if tr == self._tr("buy") else "01", data["PDNO"],
                int(data["ORD_QTY"]), int(data["ORD_UNPR"]), data["ORD_DVSN"],
                now_kst().strftime("%H%M%S"),
            )  # fmt: skip
            self.orders[odno] = o
            delay = self.knobs.order_delay_s
        self._notice(o, cntg_yn="1", qty=o.qty, price=o.price, acpt="1")
        if self.knobs.fill_before_answer:
            qty, self.knobs.fill_before_answer = self.knobs.fill_before_answer, 0
            self.fill(odno, qty, o.price)
            time.sleep(0.2)  # the notice is surely read before the answer
        if delay:
            time.sleep(delay)  # accepted, answered too late for the client
        if self.auto_fill:
            self.to_fill.put(odno)
        out = {"KRX_FWDG_ORD_ORGNO": "06010", "ODNO": odno, "ORD_TMD": o.tmd}
        return 200, {"rt_cd": "0", "msg_cd": "APBK0013", "msg1": "주문 전송 완료 되었습니다.",
                     "output": out}, {}  # fmt: skip

    def _cancel(self, tr: str, data: dict[str, str], hdr: Any) -> Any:
        with self.lock:
            if self.knobs.drop_next_cancels > 0:
                self.knobs.drop_next_cancels -= 1
                return 0, None, {}
        if tr != self._tr("rvsecncl"):
            return 500, _err("EGW00213", "TR 이 아닙니다."), {}
        if data.get("RVSE_CNCL_DVSN_CD") != "02" or data.get("QTY_ALL_ORD_YN") != "Y":
            return 200, _err("OPSQ2002", "only cancel-all is faked"), {}
        with self.lock:
            orig = self.orders.get(data.get("ORGN_ODNO", ""))
            if orig is None or data.get("KRX_FWDG_ORD_ORGNO") != "06010":
                return 200, _err("APBK0656", "해당 주문이 없습니다."), {}
            if orig.remaining <= 0:
                return 200, _err("APBK0344", "정정/취소할 수량이 없습니다."), {}
            left = orig.remaining
            orig.canceled += left
            odno = f"{next(self.odnos):010d}"
            row = Order(odno, orig.odno, orig.side, orig.symbol, left, 0, orig.dvsn,
                        now_kst().strftime("%H%M%S"))  # fmt: skip
            self.orders[odno] = row
        self._notice(row, cntg_yn="1", qty=left, price=0, acpt="2", rctf="2")
        out = {"krx_fwdg_ord_orgno": "06010", "odno": odno, "ord_tmd": row.tmd}
        return 200, {"rt_cd": "0", "msg_cd": "APBK0013", "msg1": "주문 전송 완료 되었습니다.",
                     "output": out}, {}  # fmt: skip

    def _page(
        self, rows: list[dict[str, Any]], data: dict[str, str], hdr: Any, size: int
    ) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
        start = int(data.get("CTX_AREA_NK100") or 0)
        if start and hdr.get("tr_cont") != "N":
            raise ValueError("a next-page request without tr_cont N")
        page = rows[start : start + size]
        more = start + size < len(rows)
        ctx = {"ctx_area_fk100": "fk" if more else "", "ctx_area_nk100":
               str(start + size) if more else ""}  # fmt: skip
        return page, ctx, {"tr_cont": "M" if more else "D"}

    def _daily_ccld(self, tr: str, data: dict[str, str], hdr: Any) -> Any:
        if tr != self._tr("daily_ccld"):
            return 500, _err("EGW00213", "TR 이 아닙니다."), {}
        today = now_kst().strftime("%Y%m%d")
        with self.lock:
            rows = [
                {
                    "ord_dt": today, "ord_gno_brno": "06010", "odno": o.odno,
                    "orgn_odno": o.orig, "ord_dvsn_cd": o.dvsn, "sll_buy_dvsn_cd": o.side,
                    "pdno": o.symbol, "ord_qty": str(o.qty), "ord_unpr": str(o.price),
                    "ord_tmd": o.tmd, "tot_ccld_qty": str(o.filled),
                    "avg_prvs": f"{(o.amount / o.filled) if o.filled else 0:.2f}",
                    "tot_ccld_amt": str(o.amount), "cncl_yn": "Y" if o.orig else "N",
                    "cnc_cfrm_qty": str(o.canceled), "rmn_qty": str(o.remaining),
                    "rjct_qty": str(o.rejected), "ord_orgno": "91252",
                    "excg_id_dvsn_Cd": "KRX",
                }
                for o in self.orders.values()
                if data.get("CCLD_DVSN") != "02" or o.remaining > 0
            ]  # fmt: skip
        try:
            page, ctx, headers = self._page(rows, data, hdr, self.page_size)
        except ValueError as exc:
            return 200, _err("OPSQ2003", str(exc)), {}
        summary = {"tot_ord_qty": str(sum(int(r["ord_qty"]) for r in rows))}
        return 200, {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다.",
                     "output1": page, "output2": summary, **ctx}, headers  # fmt: skip

    def _psbl_rvsecncl(self, tr: str, data: dict[str, str], hdr: Any) -> Any:
        if self.mode == "paper":
            return 500, _err("OPSQ0002", "없는 서비스 코드 입니다"), {}
        with self.lock:
            rows = [
                {"ord_gno_brno": "06010", "odno": o.odno, "orgn_odno": "", "pdno": o.symbol,
                 "ord_qty": str(o.qty), "ord_unpr": str(o.price), "ord_tmd": o.tmd,
                 "tot_ccld_qty": str(o.filled), "psbl_qty": str(o.remaining),
                 "sll_buy_dvsn_cd": o.side, "ord_dvsn_cd": o.dvsn}
                for o in self.orders.values() if o.remaining > 0
            ]  # fmt: skip
        page, ctx, headers = self._page(rows, data, hdr, 50)
        return 200, {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다.",
                     "output": page, **ctx}, headers  # fmt: skip

    def _balance(self, tr: str, data: dict[str, str], hdr: Any) -> Any:
        if tr != self._tr("balance"):
            return 500, _err("EGW00213", "TR 이 아닙니다."), {}
        with self.lock:
            rows = [
                {"pdno": s, "prdt_name": s, "hldg_qty": str(q), "ord_psbl_qty": str(q),
                 "pchs_avg_pric": "0.0000", "prpr": "0"}
                for s, q in sorted(self.holdings.items())
            ]  # fmt: skip
            cash = self.cash
        page, ctx, headers = self._page(rows, data, hdr, 20 if self.mode == "paper" else 50)
        summary = [{"dnca_tot_amt": str(cash), "nxdy_excc_amt": str(cash)}]
        return 200, {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다.",
                     "output1": page, "output2": summary, **ctx}, headers  # fmt: skip

    def _psbl_order(self, tr: str, data: dict[str, str], hdr: Any) -> Any:
        with self.lock:
            cash = self.cash
        out = {"ord_psbl_cash": str(cash), "nrcvb_buy_amt": str(cash)}
        return 200, {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다.",
                     "output": out}, {}  # fmt: skip


def _err(code: str, msg: str) -> dict[str, str]:
    return {"rt_cd": "1", "msg_cd": code, "msg1": msg}
