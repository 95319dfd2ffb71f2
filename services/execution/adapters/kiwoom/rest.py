"""The Kiwoom REST client: every call a JSON POST with an `api-id` header, the shared token
cache (au10001, renewed before its KST expiry) and rate limiters, both error forms mapped to
typed errors, paging with the cont-yn / next-key response headers. One instance per thread
(a requests.Session is not shared between threads).

Retries happen only where Kiwoom provably did nothing: a rate-limit refusal (1700/1701/1702,
return_code 5, HTTP 429: everyone on the key pauses, then again, with doubling pauses) and an
invalid token (8005/8031/8103 or return_code 3: forget it, issue a new one, once). A request
that may have arrived (read timeout, dropped connection) raises OutcomeUnknown and is never
sent again; one that could not connect raises NotDelivered. No attempt starts after the
caller's deadline.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from services.execution.adapters.common.errors import (
    BadResponse,
    NotDelivered,
    OutcomeUnknown,
    RateLimited,
    TokenExpired,
)
from services.execution.adapters.common.ratelimit import RateLimiter, RateLimitTimeout
from services.execution.adapters.common.tokens import TokenCache
from services.execution.adapters.kiwoom import wire
from services.runtime.log import logger, mask
from services.runtime.secrets import secret
from services.runtime.settings import Settings

CONTENT_TYPE = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class KiwoomConfig:
    """Settings and secrets resolved for one app key."""

    mode: wire.Mode
    rest_url: str
    ws_url: str
    app_key: str
    app_secret: str
    account: str
    exchange: str
    rate_per_s: int
    query_burst: int
    query_window_s: float
    rate_limit_backoff_s: float
    rate_limit_retries: int
    token_min_interval_s: float
    token_renew_before_s: float
    connect_timeout_s: float
    order_timeout_s: float
    page_delay_s: float
    max_pages: int
    state_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings, env: dict[str, str] | None = None) -> KiwoomConfig:
        kw = settings.broker.kiwoom
        live = settings.broker.mode == "live"
        state = kw.state_dir or settings.runtime.var_path / "broker" / "kiwoom"
        exchange = kw.exchange
        if not live and exchange != "KRX":
            logger.warning("Kiwoom mock supports KRX only (kiwoom.md 1): {} -> KRX", exchange)
            exchange = "KRX"
        account = secret(kw.account_env, env=env, required=False).replace("-", "").strip()
        return cls(
            mode="live" if live else "mock",
            rest_url=(kw.live_rest_url if live else kw.mock_rest_url).rstrip("/"),
            ws_url=(kw.live_ws_url if live else kw.mock_ws_url).rstrip("/") + kw.ws_path,
            app_key=secret(kw.app_key_env, env=env),
            app_secret=secret(kw.app_secret_env, env=env),
            account=account,
            exchange=exchange,
            rate_per_s=kw.live_rate_per_s if live else kw.mock_rate_per_s,
            query_burst=kw.query_burst,
            query_window_s=kw.query_window_s,
            rate_limit_backoff_s=kw.rate_limit_backoff_ms / 1000.0,
            rate_limit_retries=kw.rate_limit_retries,
            token_min_interval_s=kw.token_min_interval_s,
            token_renew_before_s=kw.token_renew_before_s,
            connect_timeout_s=kw.connect_timeout_ms / 1000.0,
            order_timeout_s=kw.order_timeout_ms / 1000.0,
            page_delay_s=kw.query_page_delay_ms / 1000.0,
            max_pages=kw.max_pages,
            state_dir=state if state.is_absolute() else settings.runtime.var_path / state,
        )

    @property
    def key_id(self) -> str:
        """Names the files shared by processes on this key and host (not the key itself)."""
        digest = hashlib.sha256(f"{self.rest_url}|{self.app_key}".encode()).hexdigest()
        return f"{self.mode}-{digest[:16]}"


class Limits:
    """The key's overall limiter plus one per query api-id (orders are not held back by the
    per-api bucket: 6.1 suggests it for TRs polled repeatedly)."""

    def __init__(self, cfg: KiwoomConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.overall = RateLimiter(
            cfg.state_dir / f"rate-{cfg.key_id}.json", cfg.rate_per_s, clock=clock
        )
        self.per_api: dict[str, RateLimiter] = {}

    def for_api(self, api_id: str) -> RateLimiter | None:
        if not api_id.startswith("ka") and not api_id.startswith("kt00"):
            return None
        limiter = self.per_api.get(api_id)
        if limiter is None:
            limiter = RateLimiter(
                self.cfg.state_dir / f"rate-{self.cfg.key_id}-{api_id}.json",
                self.cfg.query_burst,
                window_s=self.cfg.query_window_s,
                clock=self.clock,
            )
            self.per_api[api_id] = limiter
        return limiter


def shared_state(cfg: KiwoomConfig, issuer: KiwoomRest) -> TokenCache:
    """The token cache every process on this key shares (a file); issuer issues a token
    when the cache has none."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    return TokenCache(
        cfg.state_dir / f"token-{cfg.key_id}.json",
        issuer.issue_token,
        cfg.token_min_interval_s,
        cfg.token_renew_before_s,
    )


def transport_error(exc: requests.RequestException, what: str) -> Exception:
    """NotDelivered if no connection was ever made, else OutcomeUnknown."""
    if isinstance(exc, requests.ConnectTimeout):
        return NotDelivered(f"{what}: connect timed out")
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, NewConnectionError | ConnectTimeoutError):
            return NotDelivered(f"{what}: cannot connect ({type(reason).__name__})")
    return OutcomeUnknown(f"{what}: {type(exc).__name__}, no answer")


@dataclass(frozen=True)
class Answer:
    body: dict[str, Any]
    cont_yn: str
    next_key: str
    form: wire.Form


class KiwoomRest:
    def __init__(
        self,
        cfg: KiwoomConfig,
        tokens: TokenCache | None,
        limits: Limits | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self.tokens = tokens
        self.limits = limits
        self.sleep = sleep
        self.session = requests.Session()
        # never a transparent retry: a POST must go out at most once
        self.session.mount("http://", HTTPAdapter(max_retries=0))
        self.session.mount("https://", HTTPAdapter(max_retries=0))
        self.session.headers["User-Agent"] = "QTS/0.1"
        self.rate_limited = 0  # rate-limit answers met (counters, tests)
        self.token_retries = 0
        self.forms: dict[str, int] = {}  # error envelope forms met (3.4 is UNCERTAIN)

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ auth (2)
    def issue_token(self) -> tuple[str, float]:
        """au10001 -> (token, expiry epoch s). Called by the TokenCache only."""
        body = self._post_plain(
            wire.TOKEN_PATH,
            wire.TOKEN_ID,
            {
                "grant_type": "client_credentials",
                "appkey": self.cfg.app_key,
                "secretkey": self.cfg.app_secret,
            },
        )
        token, expires = wire.parse_token(body)
        mask(token)
        logger.info(
            "Kiwoom {} access token issued, valid until {} KST",
            self.cfg.mode,
            body.get("expires_dt", "?"),
        )
        return token, expires

    def revoke(self, token: str) -> None:
        """au10002: the token stops working (for every process sharing it)."""
        self._post_plain(
            wire.REVOKE_PATH,
            wire.REVOKE_ID,
            {"appkey": self.cfg.app_key, "secretkey": self.cfg.app_secret, "token": token},
        )

    def _post_plain(self, path: str, api_id: str, payload: dict[str, str]) -> dict[str, Any]:
        try:
            resp = self.session.post(
                self.cfg.rest_url + path,
                json=payload,
                headers={"Content-Type": CONTENT_TYPE, "api-id": api_id},
                timeout=(self.cfg.connect_timeout_s, self.cfg.order_timeout_s),
            )
        except requests.RequestException as exc:
            raise transport_error(exc, f"{api_id} {path}") from None
        body = wire.parse_body(resp.status_code, resp.text)
        self._seen(wire.check(resp.status_code, body))
        return body

    def _seen(self, env: wire.Envelope) -> None:
        if env.form not in self.forms:
            logger.info("Kiwoom answer envelope form met: {} (kiwoom.md 3.4)", env.form)
        self.forms[env.form] = self.forms.get(env.form, 0) + 1

    # ------------------------------------------------------------------ calls (3)
    def call(
        self,
        api_id: str,
        path: str,
        body: dict[str, str],
        *,
        deadline: float,
        cont_yn: str = "",
        next_key: str = "",
        read_timeout: float | None = None,
        no_data_ok: bool = False,
    ) -> Answer:
        """One TR -> its answer. deadline: time.monotonic() after which no attempt starts.
        read_timeout: how long to wait for the answer once sent (default: until the
        deadline). Raises BrokerError subclasses, NotDelivered, OutcomeUnknown."""
        assert self.tokens is not None and self.limits is not None
        token_retried = False
        rate_retries = 0
        while True:
            self._acquire(api_id, deadline, path)
            token = self.tokens.get()
            headers = {
                "Content-Type": CONTENT_TYPE,
                "api-id": api_id,
                "authorization": f"Bearer {token}",
            }
            if cont_yn:
                headers["cont-yn"] = cont_yn
                headers["next-key"] = next_key
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotDelivered(f"{api_id}: deadline passed before sending")
            try:
                resp = self.session.post(
                    self.cfg.rest_url + path,
                    json=body,
                    headers=headers,
                    timeout=(min(self.cfg.connect_timeout_s, left), read_timeout or left),
                )
            except requests.RequestException as exc:
                raise transport_error(exc, f"{api_id} {path}") from None
            data = wire.parse_body(resp.status_code, resp.text)
            try:
                env = wire.check(resp.status_code, data, no_data_ok=no_data_ok)
            except RateLimited as exc:
                self._seen(wire.envelope(resp.status_code, data))
                self.rate_limited += 1
                pause = self.cfg.rate_limit_backoff_s * (2**rate_retries)
                self.limits.overall.pause(pause)
                logger.warning(
                    "Kiwoom {} refused {} (HTTP {}): everyone on the key pauses {:.1f}s",
                    api_id, exc.code, exc.http_status, pause,
                )  # fmt: skip
                rate_retries += 1
                if rate_retries > self.cfg.rate_limit_retries or (
                    time.monotonic() + pause >= deadline
                ):
                    raise
                continue
            except TokenExpired as exc:
                self._seen(wire.envelope(resp.status_code, data))
                if token_retried:
                    raise
                token_retried = True
                self.token_retries += 1
                logger.warning("Kiwoom {}: token refused ({}): issuing a new one", api_id, exc)
                self.tokens.invalidate(token)
                continue
            except Exception:
                self._seen(wire.envelope(resp.status_code, data))
                raise
            self._seen(env)
            return Answer(
                data,
                resp.headers.get("cont-yn", "").strip(),
                resp.headers.get("next-key", "").strip(),
                env.form,
            )

    def _acquire(self, api_id: str, deadline: float, path: str) -> None:
        assert self.limits is not None
        wall_deadline = time.time() + (deadline - time.monotonic())
        try:
            per_api = self.limits.for_api(api_id)
            if per_api is not None:
                per_api.acquire(wall_deadline)
            self.limits.overall.acquire(wall_deadline)
        except RateLimitTimeout as exc:
            raise NotDelivered(f"{api_id} {path}: {exc}") from None

    def pages(
        self, api_id: str, path: str, body: dict[str, str], rows_key: str, deadline: float
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every page of a query: (all rows under rows_key, each page's body). Continues
        while the response header cont-yn is Y, copying next-key (3.2: headers, not body)."""
        rows: list[dict[str, Any]] = []
        bodies: list[dict[str, Any]] = []
        cont, key = "", ""
        for _ in range(self.cfg.max_pages):
            answer = self.call(
                api_id, path, body, deadline=deadline, cont_yn=cont, next_key=key, no_data_ok=True
            )
            bodies.append(answer.body)
            page = answer.body.get(rows_key) or []
            if not isinstance(page, list):
                raise BadResponse("BAD_PAGE", f"{api_id} {rows_key} is not a list")
            rows.extend(r for r in page if isinstance(r, dict))
            if answer.cont_yn.upper() != "Y":
                return rows, bodies
            if not answer.next_key:
                raise BadResponse("BAD_PAGE", f"{api_id}: cont-yn Y without a next-key")
            cont, key = "Y", answer.next_key
            if self.cfg.page_delay_s:
                self.sleep(self.cfg.page_delay_s)
        raise BadResponse("TOO_MANY_PAGES", f"{api_id}: more than {self.cfg.max_pages} pages")

    # ------------------------------------------------------------------ orders (4.3)
    def order(
        self, side: wire.Side, symbol: str, qty: int, price: int, code: str, deadline: float
    ) -> tuple[str, str]:
        """kt10000 (buy) / kt10001 (sell) -> (ord_no, dmst_stex_tp)."""
        body = wire.order_body(self.cfg.exchange, symbol, qty, price, code)
        api_id = wire.BUY_ID if side is wire.Side.BUY else wire.SELL_ID
        answer = self.call(
            api_id, wire.ORDER_PATH, body, deadline=deadline, read_timeout=self.cfg.order_timeout_s
        )
        return wire.order_no(answer.body.get("ord_no")), str(
            answer.body.get("dmst_stex_tp", "") or self.cfg.exchange
        ).strip()

    def modify(
        self, orig_order_no: str, symbol: str, qty: int, price: int, exchange: str, deadline: float
    ) -> str:
        """kt10002 -> the new order number (a modify makes a new order: 4.3)."""
        body = {
            "dmst_stex_tp": exchange or self.cfg.exchange,
            "orig_ord_no": orig_order_no,
            "stk_cd": symbol,
            "mdfy_qty": str(qty),
            "mdfy_uv": str(price),
            "mdfy_cond_uv": "",
        }
        answer = self.call(
            wire.MODIFY_ID, wire.ORDER_PATH, body, deadline=deadline,
            read_timeout=self.cfg.order_timeout_s,
        )  # fmt: skip
        return wire.order_no(answer.body.get("ord_no"))

    def cancel(self, orig_order_no: str, symbol: str, exchange: str, deadline: float) -> str:
        """kt10003 for the whole remainder (cncl_qty "0": 4.3) -> the cancel's order number."""
        body = {
            "dmst_stex_tp": exchange or self.cfg.exchange,
            "orig_ord_no": orig_order_no,
            "stk_cd": symbol,
            "cncl_qty": "0",
        }
        answer = self.call(
            wire.CANCEL_ID, wire.ORDER_PATH, body, deadline=deadline,
            read_timeout=self.cfg.order_timeout_s,
        )  # fmt: skip
        return wire.order_no(answer.body.get("ord_no"))

    # ------------------------------------------------------------------ queries (4.2)
    def _stex_tp(self) -> str:
        return {"KRX": "1", "NXT": "2"}.get(self.cfg.exchange, "0")  # SOR: 0 통합

    def open_orders(self, deadline: float) -> list[wire.OrderRow]:
        body = {"all_stk_tp": "0", "trde_tp": "0", "stk_cd": "", "stex_tp": self._stex_tp()}
        rows, _ = self.pages(wire.OPEN_ORDERS_ID, wire.ACCOUNT_PATH, body, "oso", deadline)
        return [wire.parse_open_row(r) for r in rows]

    def filled_orders(self, deadline: float) -> list[wire.OrderRow]:
        body = {
            "stk_cd": "", "qry_tp": "0", "sell_tp": "0", "ord_no": "",
            "stex_tp": self._stex_tp(),
        }  # fmt: skip
        rows, _ = self.pages(wire.FILLS_ID, wire.ACCOUNT_PATH, body, "cntr", deadline)
        return [wire.parse_fill_row(r) for r in rows]

    def holdings(self, deadline: float) -> dict[str, int]:
        exchange = "NXT" if self.cfg.exchange == "NXT" else "KRX"  # KRX or NXT only (4.2)
        body = {"qry_tp": "1", "dmst_stex_tp": exchange}
        rows, _ = self.pages(
            wire.BALANCE_ID, wire.ACCOUNT_PATH, body, "acnt_evlt_remn_indv_tot", deadline
        )
        return wire.parse_holdings(rows)

    def deposit(self, deadline: float) -> wire.Deposit:
        """kt00001 예수금상세현황 (qry_tp 2 일반조회): cash and buying power."""
        answer = self.call(wire.DEPOSIT_ID, wire.ACCOUNT_PATH, {"qry_tp": "2"}, deadline=deadline)
        return wire.parse_deposit(answer.body)
