"""A fake Kiwoom: real HTTP and WebSocket servers on 127.0.0.1 speaking the documented
protocol (shared/brokers/kiwoom.md), for the adapter's tests and for running the whole system
against (`FakeKiwoom().start()`, then point broker.kiwoom.mock_rest_url / mock_ws_url at it).

REST: every call a JSON POST with an `api-id` header and `authorization: Bearer <token>`;
au10001 token (expires_dt in KST), au10002 revoke, kt10000-kt10003 orders, ka10075 open
orders, ka10076 filled orders, kt00018 holdings, kt00001 deposit; paging with the cont-yn /
next-key headers. Errors in either form (`error_form`): "four_digit" puts the code in
return_code (the official SDK's reading), "bracketed" a small category code with
"[NNNN:...]" in return_msg and HTTP 429 for 1700 (live observations, 3.4).

WebSocket (path /api/dostk/websocket): LOGIN first (else SYSTEM R10004 and close), REG /
REMOVE, REAL 00 / 04 for the account to every registered session, 0B / 0D for registered
items, PING from the server that clients echo, and a second LOGIN with the same key closes
the first session after SYSTEM R10001.

Fault knobs: rate_limit_next (answer the next N calls with 1700), hang_orders_s (take an order
but answer only after this long), expire_tokens(), drop_websockets(), send_raw(), system().
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

KST = ZoneInfo("Asia/Seoul")
OK_MSG = "정상적으로 처리되었습니다"
TRDE_TP = {"0", "3", "5", "6", "7", "10", "13", "16", "20", "23", "26", "28", "29", "30", "31",
           "61", "62", "81"}  # fmt: skip
PRICED = {"0", "5", "10", "20", "28", "62"}
PATHS = {
    "au10001": "/oauth2/token", "au10002": "/oauth2/revoke",
    "kt10000": "/api/dostk/ordr", "kt10001": "/api/dostk/ordr", "kt10002": "/api/dostk/ordr",
    "kt10003": "/api/dostk/ordr", "ka10075": "/api/dostk/acnt", "ka10076": "/api/dostk/acnt",
    "kt00018": "/api/dostk/acnt", "kt00001": "/api/dostk/acnt",
}  # fmt: skip
MESSAGES = {
    1504: "해당 URI에서는 지원하는 API ID가 아닙니다",
    1505: "해당 API ID는 존재하지 않습니다",
    1511: "필수 입력 값에 값이 존재하지 않습니다",
    1513: "Http Header에 authorization 필드가 설정되어 있어야 합니다",
    1517: "입력 값 형식이 올바르지 않습니다",
    1700: "허용된 API 요청 개수를 초과하였습니다",
    2000: "주문가능금액을 초과합니다",  # a business refusal: not in the official table
    2001: "주문 가능한 미체결 주문이 없습니다",
    8001: "App Key와 Secret Key 검증에 실패했습니다",
    8005: "Token이 유효하지 않습니다",
}
CATEGORY = {1700: 5, 8005: 3, 8001: 3, 1513: 3}  # the small return_code of the bracketed form


def kst_now() -> dt.datetime:
    return dt.datetime.now(KST)


@dataclass
class FakeOrder:
    order_no: str
    symbol: str
    side: str  # "BUY" / "SELL"
    qty: int
    price: int
    trde_tp: str
    exchange: str
    tm: str  # HHMMSS KST
    filled: int = 0
    filled_amt: int = 0
    canceled: int = 0
    orig_order_no: str = "0000000"
    kind: str = ""  # io_tp_nm: +매수 / -매도 / 매수정정 ...
    fills: int = 0

    @property
    def unfilled(self) -> int:
        return self.qty - self.filled - self.canceled


@dataclass
class Session:
    conn: ServerConnection
    types: set[str] = field(default_factory=set)
    items: dict[str, set[str]] = field(default_factory=dict)  # type -> items
    logged_in: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    pongs: int = 0

    def send(self, obj: dict[str, Any] | str) -> None:
        text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        with self.lock:
            try:
                self.conn.send(text)
            except ConnectionClosed:
                pass


class FakeKiwoom:
    def __init__(
        self,
        app_key: str = "test-kiwoom-app-key",
        app_secret: str = "test-kiwoom-app-secret",
        account: str = "5012345610",
        cash: int = 100_000_000,
        holdings: dict[str, int] | None = None,
        error_form: str = "bracketed",
        token_lifetime_s: float = 86_400.0,
        page_size: int = 50,
        fill_qty_form: str = "cumulative",  # what 911 carries: "cumulative" or "this_fill"
        exchanges: tuple[str, ...] = ("KRX",),  # mock: KRX only (1)
        auto_fill: bool = False,  # fill every order by itself: first half, then the rest
        keep_open_every: int = 0,  # auto_fill: every Nth order gets only its first half
    ) -> None:
        self.app_key, self.app_secret, self.account = app_key, app_secret, account
        self.cash = cash
        self.holdings = dict(holdings or {})
        self.error_form = error_form
        self.token_lifetime_s = token_lifetime_s
        self.page_size = page_size
        self.fill_qty_form = fill_qty_form
        self.exchanges = exchanges
        self.lock = threading.RLock()
        self.tokens: dict[str, float] = {}  # token -> expiry epoch s
        self.orders: dict[str, FakeOrder] = {}
        self.order_nos = itertools.count(1)
        self.fill_nos = itertools.count(1)
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []  # (api-id, body, hdr)
        self.issued = 0
        self.revoked: list[str] = []
        self.rate_limit_next = 0
        self.hang_orders_s = 0.0
        self.sessions: list[Session] = []
        self.logins = 0
        self.regs = 0
        self.stopping = threading.Event()
        self.http: ThreadingHTTPServer | None = None
        self.ws: Server | None = None
        self.threads: list[threading.Thread] = []
        self.auto_fill = auto_fill
        self.keep_open_every = keep_open_every
        self.auto_filled = 0
        self.to_fill: queue.Queue[str | None] = queue.Queue()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeKiwoom:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._http(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.ws = serve(self._ws_session, "127.0.0.1", 0, ping_interval=None, compression=None)
        for target in (self.http.serve_forever, self.ws.serve_forever, self._filler):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.to_fill.put(None)
        self.drop_websockets()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        if self.ws is not None:
            self.ws.shutdown()
        for thread in self.threads:
            thread.join(5.0)

    @property
    def rest_url(self) -> str:
        assert self.http is not None
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    @property
    def ws_url(self) -> str:
        assert self.ws is not None
        return f"ws://127.0.0.1:{self.ws.socket.getsockname()[1]}"

    # ------------------------------------------------------------------ helpers
    def api_calls(self, api_id: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c[0] == api_id)

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (8005)."""
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def _error(self, code: int, http: int = 200, detail: str = "") -> tuple[int, dict[str, Any]]:
        msg = MESSAGES.get(code, "오류") + (f" {detail}" if detail else "")
        if self.error_form == "four_digit":
            return http, {"return_code": code, "return_msg": msg}
        category = CATEGORY.get(code, 2)
        head = {5: "허용된 요청 개수를 초과하였습니다", 3: "인증에 실패했습니다"}.get(
            category, "오류"
        )
        if code == 1700:
            http = 429
        return http, {"return_code": category, "return_msg": f"{head}[{code}:{msg}]"}

    def _ok(self, **body: Any) -> tuple[int, dict[str, Any]]:
        return 200, {**body, "return_code": 0, "return_msg": OK_MSG}

    # ------------------------------------------------------------------ HTTP
    def _http(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length", "0") or 0)
        raw = req.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in req.headers.items()}
        extra: dict[str, str] = {}
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            status, answer = self._error(1517, detail="body is not JSON")
        else:
            api_id = headers.get("api-id", "")
            with self.lock:
                self.calls.append((api_id, body, headers))
            status, answer, extra = self._dispatch(req.path, api_id, body, headers)
        data = json.dumps(answer, ensure_ascii=False).encode()
        try:
            req.send_response(status)
            req.send_header("Content-Type", "application/json;charset=UTF-8")
            req.send_header("Content-Length", str(len(data)))
            req.send_header("api-id", headers.get("api-id", ""))
            for key, value in extra.items():
                req.send_header(key, value)
            req.end_headers()
            req.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timed-out order)

    def _dispatch(
        self, path: str, api_id: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not api_id and path == "/oauth2/token":
            api_id = "au10001"  # the official SDK sends no api-id here (2.1)
        if api_id not in PATHS:
            return (*self._error(1505 if api_id else 1511), {})
        if PATHS[api_id] != path:
            return (*self._error(1504, detail=f"API ID={api_id}, URI={path}"), {})
        if api_id == "au10001":
            return (*self._issue(body), {})
        if api_id == "au10002":
            return (*self._revoke(body), {})
        with self.lock:
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                return (*self._error(1700, detail=f"API ID={api_id}"), {})
        auth = headers.get("authorization", "")
        if not auth:
            return (*self._error(1513), {})
        token = auth.removeprefix("Bearer ").strip()
        with self.lock:
            valid = self.tokens.get(token, 0.0) > time.time()
        if not valid:
            return (*self._error(8005), {})
        if api_id in ("kt10000", "kt10001"):
            result = self._order(api_id, body)
            if self.hang_orders_s:
                self.stopping.wait(self.hang_orders_s)
            return (*result, {})
        if api_id == "kt10002":
            return (*self._modify(body), {})
        if api_id == "kt10003":
            return (*self._cancel(body), {})
        if api_id == "kt00001":
            with self.lock:
                cash = self.cash
            return (
                *self._ok(
                    entr=f"{cash:015d}",
                    d2_entra=f"{cash:015d}",
                    ord_alow_amt=f"{cash:015d}",
                    pymn_alow_amt=f"{cash:015d}",
                ),
                {},
            )
        rows, key = self._rows(api_id, body)
        start = int(headers.get("next-key", "0") or 0) if headers.get("cont-yn") == "Y" else 0
        page = rows[start : start + self.page_size]
        more = start + self.page_size < len(rows)
        extra = {
            "cont-yn": "Y" if more else "N",
            "next-key": str(start + self.page_size) if more else "",
        }
        if api_id == "kt00018":
            return (*self._ok(tot_pur_amt="000000000000000", acnt_evlt_remn_indv_tot=page), extra)
        return (*self._ok(**{key: page}), extra)

    def _issue(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("grant_type") != "client_credentials":
            return self._error(1517, detail="grant_type")
        if body.get("appkey") != self.app_key or body.get("secretkey") != self.app_secret:
            return self._error(8001)
        token = secrets.token_hex(24)
        expires = kst_now() + dt.timedelta(seconds=self.token_lifetime_s)
        with self.lock:
            self.tokens[token] = expires.timestamp()
            self.issued += 1
        return self._ok(
            expires_dt=expires.strftime("%Y%m%d%H%M%S"), token_type="Bearer", token=token
        )

    def _revoke(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("appkey") != self.app_key or body.get("secretkey") != self.app_secret:
            return self._error(8001)
        token = str(body.get("token", ""))
        with self.lock:
            self.tokens.pop(token, None)
            self.revoked.append(token)
        return self._ok()

    # ------------------------------------------------------------------ orders
    def _order(self, api_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for name in ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp"):
            if not str(body.get(name, "")):
                return self._error(1511, detail=name)
        exchange, code = str(body["dmst_stex_tp"]), str(body["trde_tp"])
        if exchange not in self.exchanges or code not in TRDE_TP:
            return self._error(1517, detail=f"dmst_stex_tp={exchange} trde_tp={code}")
        try:
            qty = int(body["ord_qty"])
            price = int(body.get("ord_uv") or 0)
        except ValueError:
            return self._error(1517, detail="ord_qty/ord_uv")
        if qty <= 0 or (code in PRICED and price <= 0):
            return self._error(1517, detail="ord_qty/ord_uv")
        side = "BUY" if api_id == "kt10000" else "SELL"
        with self.lock:
            if side == "BUY" and qty * max(price, 1) > self.cash:
                return self._error(2000)
            order = FakeOrder(
                f"{next(self.order_nos):07d}", str(body["stk_cd"]), side, qty, price, code,
                exchange, kst_now().strftime("%H%M%S"),
                kind="+매수" if side == "BUY" else "-매도",
            )  # fmt: skip
            self.orders[order.order_no] = order
        self._order_event(order, "접수")
        if self.auto_fill:
            self.to_fill.put(order.order_no)
        verb = "매수" if side == "BUY" else "매도"
        return self._ok(
            ord_no=order.order_no, dmst_stex_tp=exchange, return_msg=f"{verb}주문이 완료되었습니다."
        )

    def _modify(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            orig = self.orders.get(str(body.get("orig_ord_no", "")))
            if orig is None or orig.unfilled <= 0 or orig.symbol != body.get("stk_cd"):
                return self._error(2001)
            try:
                qty, price = int(body["mdfy_qty"]), int(body["mdfy_uv"])
            except (KeyError, ValueError):
                return self._error(1517, detail="mdfy_qty/mdfy_uv")
            qty = qty or orig.unfilled
            qty = min(qty, orig.unfilled)
            orig.canceled += qty
            new = FakeOrder(
                f"{next(self.order_nos):07d}", orig.symbol, orig.side, qty, price, orig.trde_tp,
                orig.exchange, kst_now().strftime("%H%M%S"), orig_order_no=orig.order_no,
                kind="매수정정" if orig.side == "BUY" else "매도정정",
            )  # fmt: skip
            self.orders[new.order_no] = new
        self._order_event(new, "접수")
        self._order_event(new, "확인")
        return self._ok(
            ord_no=new.order_no, base_orig_ord_no=orig.order_no, mdfy_qty=f"{qty:012d}",
            dmst_stex_tp=new.exchange,
        )  # fmt: skip

    def _cancel(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            orig = self.orders.get(str(body.get("orig_ord_no", "")))
            if orig is None or orig.unfilled <= 0 or orig.symbol != body.get("stk_cd"):
                return self._error(2001)
            try:
                qty = int(body.get("cncl_qty", "0") or 0)
            except ValueError:
                return self._error(1517, detail="cncl_qty")
            qty = orig.unfilled if qty == 0 else min(qty, orig.unfilled)  # '0': all (4.3)
            orig.canceled += qty
            cancel = FakeOrder(
                f"{next(self.order_nos):07d}", orig.symbol, orig.side, qty, 0, orig.trde_tp,
                orig.exchange, kst_now().strftime("%H%M%S"), orig_order_no=orig.order_no,
                kind="매수취소" if orig.side == "BUY" else "매도취소",
            )  # fmt: skip
        self._order_event(cancel, "접수")
        self._order_event(cancel, "확인")
        return self._ok(
            ord_no=cancel.order_no, base_orig_ord_no=orig.order_no, cncl_qty=f"{qty:012d}"
        )

    def fill(self, order_no: str, qty: int, price: int) -> None:
        """The exchange fills `qty` of an open order at `price`: 00 체결 and 04 go out."""
        with self.lock:
            order = self.orders[order_no]
            if qty <= 0 or qty > order.unfilled:
                raise ValueError(f"cannot fill {qty} of {order_no} ({order.unfilled} open)")
            order.filled += qty
            order.filled_amt += qty * price
            order.fills += 1
            sign = 1 if order.side == "BUY" else -1
            self.cash -= sign * qty * price
            self.holdings[order.symbol] = self.holdings.get(order.symbol, 0) + sign * qty
            held = self.holdings[order.symbol]
        self._order_event(order, "체결", unit_qty=qty, unit_price=price)
        self._broadcast("04", {
            "9201": self.account, "9001": order.symbol, "302": "종목", "10": f"+{price}",
            "930": str(held), "931": str(price), "933": str(held), "946": "2",
        })  # fmt: skip

    def _filler(self) -> None:
        """auto_fill: each order filled in two parts at its own price, shortly after (every
        keep_open_every-th only its first part: it stays open)."""
        while True:
            order_no = self.to_fill.get()
            if order_no is None:
                return
            if self.stopping.wait(0.05):
                return
            with self.lock:
                order = self.orders[order_no]
                first = order.unfilled // 2
                price = order.price or 70_000
                self.auto_filled += 1
                keep = self.keep_open_every and self.auto_filled % self.keep_open_every == 0
            for qty in (first, 0 if keep else order.unfilled - first):
                with self.lock:
                    qty = min(qty, order.unfilled)
                if qty > 0:
                    self.fill(order_no, qty, price)

    def expire(self, order_no: str) -> None:
        """The exchange cancels the remainder itself (an IOC/FOK order): 00 취소."""
        with self.lock:
            order = self.orders[order_no]
            order.canceled += order.unfilled
        self._order_event(order, "취소")

    def _order_event(
        self, order: FakeOrder, status: str, unit_qty: int = 0, unit_price: int = 0
    ) -> None:
        with self.lock:
            fill_no = str(next(self.fill_nos)) if status == "체결" else ""
            f911 = order.filled if self.fill_qty_form == "cumulative" else unit_qty
            values = {
                "9201": self.account, "9203": order.order_no, "9205": "", "9001": order.symbol,
                "912": "JJ", "913": status, "302": "종목", "900": str(order.qty),
                "901": str(order.price), "902": str(order.unfilled),
                "903": str(order.filled_amt), "904": order.orig_order_no, "905": order.kind,
                "906": "보통", "907": "2" if order.side == "BUY" else "1",
                "908": kst_now().strftime("%H%M%S"), "909": fill_no,
                "910": str(unit_price) if unit_price else "", "911": str(f911) if unit_qty else "",
                "914": str(unit_price) if unit_price else "",
                "915": str(unit_qty) if unit_qty else "", "919": "", "2134": "1",
                "2135": "KRX", "2136": "N",
            }  # fmt: skip
        self._broadcast("00", values)

    # ------------------------------------------------------------------ queries
    def _rows(self, api_id: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        with self.lock:
            orders = list(self.orders.values())
            holdings = dict(self.holdings)
        if api_id == "ka10075":
            return [
                {
                    "acnt_no": self.account, "ord_no": o.order_no, "stk_cd": o.symbol,
                    "stk_nm": "종목", "ord_stt": "접수", "ord_qty": f"{o.qty:012d}",
                    "ord_pric": f"{o.price:012d}", "oso_qty": f"{o.unfilled:012d}",
                    "cntr_tot_amt": str(o.filled_amt), "orig_ord_no": o.orig_order_no,
                    "io_tp_nm": o.kind, "trde_tp": "보통", "tm": o.tm, "cntr_qty": str(o.filled),
                    "stex_tp": "1", "stex_tp_txt": "KRX", "sor_yn": "N",
                }
                for o in orders
                if o.unfilled > 0 and "취소" not in o.kind
            ], "oso"  # fmt: skip
        if api_id == "ka10076":
            return [
                {
                    "ord_no": o.order_no, "stk_nm": "종목", "io_tp_nm": o.kind,
                    "ord_pric": f"{o.price:012d}", "ord_qty": f"{o.qty:012d}",
                    "cntr_pric": str(round(o.filled_amt / o.filled)),
                    "cntr_qty": f"{o.filled:012d}", "oso_qty": f"{o.unfilled:012d}",
                    "tdy_trde_cmsn": "0", "tdy_trde_tax": "0", "ord_stt": "체결",
                    "trde_tp": "보통", "orig_ord_no": o.orig_order_no, "ord_tm": o.tm,
                    "stk_cd": o.symbol, "stex_tp": "1", "stex_tp_txt": "KRX", "sor_yn": "N",
                }
                for o in orders
                if o.filled > 0
            ], "cntr"  # fmt: skip
        if api_id == "kt00018":
            return [
                {"stk_cd": f"A{s}", "stk_nm": "종목", "rmnd_qty": f"{q:015d}",
                 "trde_able_qty": f"{q:015d}", "cur_prc": "000000000070000"}
                for s, q in sorted(holdings.items())
                if q
            ], "acnt_evlt_remn_indv_tot"  # fmt: skip
        raise AssertionError(api_id)

    # ------------------------------------------------------------------ WebSocket
    def _ws_session(self, conn: ServerConnection) -> None:
        session = Session(conn)
        try:
            first = conn.recv(timeout=10)
            msg = json.loads(first)
            if msg.get("trnm") != "LOGIN":
                session.send({"trnm": "SYSTEM", "code": "R10004",
                              "message": "접속허용요청이 들어오지 않았습니다"})  # fmt: skip
                return
            token = str(msg.get("token", ""))
            with self.lock:
                valid = self.tokens.get(token, 0.0) > time.time()
            if not valid:
                session.send(
                    {
                        "trnm": "LOGIN",
                        "return_code": 1,
                        "return_msg": "[CODE=8005, MESSAGE=Token이 유효하지 않습니다]",
                    }
                )
                return
            with self.lock:
                old = list(self.sessions)
                self.sessions = [session]  # one session per app key (5.7)
                session.logged_in = True
                self.logins += 1
            for s in old:
                s.send(
                    {
                        "trnm": "SYSTEM",
                        "code": "R10001",
                        "message": "동일한 App key로 접속이 되었습니다. 기존 세션은 종료가 됩니다",
                    }
                )
                # closing waits for the old client's answer: not in the new session's way
                threading.Thread(target=s.conn.close, daemon=True).start()
            session.send({"trnm": "LOGIN", "return_code": 0, "return_msg": ""})
            for text in conn:
                if isinstance(text, bytes):
                    text = text.decode()
                self._ws_message(session, text)
        except (ConnectionClosed, TimeoutError, ValueError):
            pass
        finally:
            with self.lock:
                if session in self.sessions:
                    self.sessions.remove(session)

    def _ws_message(self, session: Session, text: str) -> None:
        msg = json.loads(text)
        trnm = msg.get("trnm")
        if trnm == "PING":
            session.pongs += 1
            return
        if trnm in ("REG", "REMOVE"):
            data = msg.get("data")
            if not isinstance(data, list):
                session.send({"trnm": trnm, "return_code": 1, "return_msg": "data"})
                return
            with self.lock:
                if trnm == "REG" and msg.get("refresh") == "0":
                    session.types.clear()
                    session.items.clear()
                for entry in data:
                    for typ in entry.get("type", []):
                        items = set(entry.get("item", []))
                        if trnm == "REG":
                            session.types.add(typ)
                            session.items.setdefault(typ, set()).update(items)
                        else:
                            session.items.get(typ, set()).difference_update(items)
                            if not session.items.get(typ) or items == {""}:
                                session.types.discard(typ)
                self.regs += trnm == "REG"
            session.send({"trnm": trnm, "return_code": 0, "return_msg": ""})

    def _broadcast(self, typ: str, values: dict[str, str], item: str = "") -> None:
        names = {"00": "주문체결", "04": "현물잔고", "0B": "주식체결", "0D": "주식호가잔량"}
        frame = {
            "trnm": "REAL",
            "data": [{"type": typ, "name": names.get(typ, typ), "item": item, "values": values}],
        }
        with self.lock:
            targets = [
                s for s in self.sessions
                if typ in s.types and (typ in ("00", "04") or item in s.items.get(typ, set()))
            ]  # fmt: skip
        for s in targets:
            s.send(frame)

    def trade(self, symbol: str, price: int, qty: int, buy_side: bool = True) -> None:
        """A market trade: REAL 0B to sessions registered for the symbol."""
        sign = "+" if buy_side else "-"
        self._broadcast("0B", {
            "20": kst_now().strftime("%H%M%S"), "10": f"+{price}", "11": "+100", "12": "+0.14",
            "27": f"+{price + 100}", "28": f"+{price}", "15": f"{sign}{qty}", "13": "1000",
            "14": "70", "16": f"+{price}", "17": f"+{price}", "18": f"+{price}", "25": "2",
            "290": "2", "9081": "1", "1030": "", "1031": "",
        }, item=symbol)  # fmt: skip

    def book(self, symbol: str, best_ask: int, best_bid: int, tick: int = 100) -> None:
        values = {"21": kst_now().strftime("%H%M%S")}
        for level in range(10):
            values[str(41 + level)] = f"+{best_ask + level * tick}"
            values[str(51 + level)] = f"-{best_bid - level * tick}"
            values[str(61 + level)] = str(100 + level)
            values[str(71 + level)] = str(200 + level)
        self._broadcast("0D", values, item=symbol)

    def ping(self) -> None:
        with self.lock:
            targets = list(self.sessions)
        for s in targets:
            s.send({"trnm": "PING"})

    def system(self, code: str, message: str) -> None:
        with self.lock:
            targets = list(self.sessions)
        for s in targets:
            s.send({"trnm": "SYSTEM", "code": code, "message": message})

    def send_raw(self, text: str) -> None:
        with self.lock:
            targets = list(self.sessions)
        for s in targets:
            s.send(text)

    def drop_websockets(self) -> None:
        with self.lock:
            targets = list(self.sessions)
            self.sessions.clear()
        for s in targets:
            s.conn.close()


def settings_for(
    fake: FakeKiwoom, var_dir: Any, request_timeout_ms: int = 2_000, **kiwoom: Any
) -> Any:
    """QTS settings whose Kiwoom mock hosts are this fake, state under var_dir."""
    from services.runtime.settings import (
        BrokerSettings,
        KiwoomSettings,
        RuntimeSettings,
        Settings,
    )

    options: dict[str, Any] = {
        "mock_rest_url": fake.rest_url,
        "mock_ws_url": fake.ws_url,
        "state_dir": var_dir / "kiwoom",
        "query_page_delay_ms": 0,
        "rate_limit_backoff_ms": 20,
        "ws_backoff_min_ms": 50,
        "ws_backoff_max_ms": 500,
        "token_min_interval_s": 0.0,
        **kiwoom,
    }
    return Settings(
        runtime=RuntimeSettings(var_dir=var_dir),
        broker=BrokerSettings(
            request_timeout_ms=request_timeout_ms, kiwoom=KiwoomSettings(**options)
        ),
    )


def env_for(fake: FakeKiwoom) -> dict[str, str]:
    return {
        "KIWOOM_APP_KEY": fake.app_key,
        "KIWOOM_APP_SECRET": fake.app_secret,
        "KIWOOM_ACCOUNT": fake.account,
    }
