"""The KIS REST client: one requests.Session per host and thread, the shared token cache and
rate limiter, the envelope mapped to typed errors, paging with tr_cont.

Retries happen only where the broker provably did nothing: EGW00201 (refused at the gateway:
wait, everyone on the key waits, then again) and an expired token (EGW00123: re-issue, once).
A request that may have arrived (read timeout, dropped connection) raises OutcomeUnknown and
is never sent again; one that could not connect raises NotDelivered. No attempt starts after
the caller's deadline.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from services.execution.adapters.common.errors import (
    AuthError,
    BadResponse,
    BrokerError,
    NotDelivered,
    OutcomeUnknown,
    RateLimited,
    TokenExpired,
    TokenThrottled,
    TransportError,
)
from services.execution.adapters.common.kst import parse_kst
from services.execution.adapters.common.ratelimit import RateLimiter, RateLimitTimeout
from services.execution.adapters.common.tokens import TokenCache
from services.execution.adapters.kis import wire
from services.runtime.log import logger, mask
from services.runtime.secrets import secret
from services.runtime.settings import Settings

MORE = ("F", "M")  # response tr_cont: more pages follow (3.3)
# KIS counts requests per second on arrival; 5% more than a second between a slot and the
# slot `rate` later absorbs the jitter between taking a slot and the request arriving
RATE_WINDOW_S = 1.05


@dataclass(frozen=True)
class KisConfig:
    """Settings and secrets resolved for one app key."""

    mode: wire.Mode
    rest_url: str
    ws_url: str
    app_key: str = field(repr=False)  # secrets: never in a repr (log lines also mask them)
    app_secret: str = field(repr=False)
    cano: str = field(repr=False)
    prdt: str
    hts_id: str = field(repr=False)
    custtype: str
    exchange: str
    rate_per_s: int
    rate_limit_backoff_s: float
    token_min_interval_s: float
    token_renew_before_s: float
    connect_timeout_s: float
    order_timeout_s: float
    page_delay_s: float
    max_pages: int
    state_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings, env: dict[str, str] | None = None) -> KisConfig:
        kis = settings.broker.kis
        live = settings.broker.mode == "live"
        cano, prdt = wire.split_account(secret(kis.account_env, env=env))
        state = kis.state_dir or settings.runtime.var_path / "broker" / "kis"
        return cls(
            mode="live" if live else "paper",
            rest_url=(kis.live_rest_url if live else kis.paper_rest_url).rstrip("/"),
            ws_url=(kis.live_ws_url if live else kis.paper_ws_url).rstrip("/") + kis.ws_path,
            app_key=secret(kis.app_key_env, env=env),
            app_secret=secret(kis.app_secret_env, env=env),
            cano=cano,
            prdt=prdt,
            hts_id=secret(kis.hts_id_env, env=env, required=False),
            custtype=kis.custtype,
            exchange="KRX" if not live and kis.exchange else kis.exchange,  # paper: KRX only
            rate_per_s=kis.live_rate_per_s if live else kis.paper_rate_per_s,
            rate_limit_backoff_s=kis.rate_limit_backoff_ms / 1000.0,
            token_min_interval_s=kis.token_min_interval_s,
            token_renew_before_s=kis.token_renew_before_s,
            connect_timeout_s=kis.connect_timeout_ms / 1000.0,
            order_timeout_s=kis.order_timeout_ms / 1000.0,
            page_delay_s=kis.query_page_delay_ms / 1000.0,
            max_pages=kis.max_pages,
            state_dir=state if state.is_absolute() else settings.runtime.var_path / state,
        )

    @property
    def key_id(self) -> str:
        """Names the files shared by processes on this key and host (not the key itself)."""
        digest = hashlib.sha256(f"{self.rest_url}|{self.app_key}".encode()).hexdigest()
        return f"{self.mode}-{digest[:16]}"


def shared_state(cfg: KisConfig, issuer: KisRest) -> tuple[TokenCache, RateLimiter]:
    """The token cache and rate limiter every process on this key shares (files). issuer:
    the client that issues tokens when the cache has none."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    tokens = TokenCache(
        cfg.state_dir / f"token-{cfg.key_id}.json",
        issuer.issue_token,
        cfg.token_min_interval_s,
        cfg.token_renew_before_s,
    )
    limiter = RateLimiter(
        cfg.state_dir / f"rate-{cfg.key_id}.json", cfg.rate_per_s, window_s=RATE_WINDOW_S
    )
    return tokens, limiter


def _transport_error(exc: requests.RequestException, what: str) -> Exception:
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


class KisRest:
    def __init__(
        self, cfg: KisConfig, tokens: TokenCache | None, limiter: RateLimiter | None
    ) -> None:
        self.cfg = cfg
        self.tokens = tokens
        self.limiter = limiter
        self.session = requests.Session()
        # never a transparent retry: a POST must go out at most once
        self.session.mount("http://", HTTPAdapter(max_retries=0))
        self.session.mount("https://", HTTPAdapter(max_retries=0))
        self.session.headers["User-Agent"] = "QTS/0.1"
        self.rate_limited = 0  # EGW00201/EGW00215 answers met (counters, tests)
        self.token_retries = 0

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ auth (2)
    def issue_token(self) -> tuple[str, float]:
        """POST /oauth2/tokenP -> (token, expiry epoch s). Called by the TokenCache only."""
        body = self._post_plain(
            wire.TOKEN_PATH,
            {
                "grant_type": "client_credentials",
                "appkey": self.cfg.app_key,
                "appsecret": self.cfg.app_secret,
            },
        )
        token = str(body.get("access_token", ""))
        if not token:
            raise BadResponse("NO_TOKEN", "token answer without access_token")
        if body.get("access_token_token_expired"):
            expires = parse_kst(str(body["access_token_token_expired"])).timestamp()
        else:
            expires = time.time() + float(body.get("expires_in", 0) or 0)
        logger.info(
            "KIS {} access token issued, valid until {} KST",
            self.cfg.mode,
            body.get("access_token_token_expired", "?"),
        )
        mask(token)
        return token, expires

    def approval_key(self) -> str:
        """POST /oauth2/Approval -> the WebSocket approval key (the secret goes as
        `secretkey`, not `appsecret`: 2.2)."""
        body = self._post_plain(
            wire.APPROVAL_PATH,
            {
                "grant_type": "client_credentials",
                "appkey": self.cfg.app_key,
                "secretkey": self.cfg.app_secret,
            },
        )
        key = str(body.get("approval_key", ""))
        if not key:
            raise BadResponse("NO_APPROVAL_KEY", "approval answer without approval_key")
        mask(key)
        return key

    def _post_plain(self, path: str, payload: dict[str, str]) -> dict[str, Any]:
        url = self.cfg.rest_url + path
        try:
            resp = self.session.post(
                url,
                json=payload,
                headers={"content-type": "application/json; charset=utf-8"},
                timeout=(self.cfg.connect_timeout_s, self.cfg.order_timeout_s),
            )
        except requests.RequestException as exc:
            raise _transport_error(exc, path) from None
        return wire.check_envelope(resp.status_code, wire.parse_body(resp.status_code, resp.text))

    # ------------------------------------------------------------------ requests (3)
    def request(
        self,
        method: str,
        path: str,
        tr: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, str] | None = None,
        tr_cont: str = "",
        deadline: float,
    ) -> tuple[dict[str, Any], str]:
        """One call -> (body, the response's tr_cont header). deadline: time.monotonic()
        after which no attempt starts. Raises BrokerError subclasses, NotDelivered,
        OutcomeUnknown."""
        assert self.tokens is not None and self.limiter is not None
        token_retried = False
        while True:
            try:  # first: an issuance must not sit between taking a slot and sending
                token = self.tokens.get()
            except (TokenThrottled, AuthError):
                raise  # refused with a reason worth showing; nothing was sent
            except (BrokerError, TransportError) as exc:
                # whatever happened to the token request, this request was never sent
                raise NotDelivered(f"{path}: no access token ({exc})") from None
            wall_deadline = time.time() + (deadline - time.monotonic())
            try:
                self.limiter.acquire(wall_deadline)
            except RateLimitTimeout as exc:
                raise NotDelivered(f"{path}: {exc}") from None
            headers = {
                "content-type": "application/json; charset=utf-8",
                "authorization": f"Bearer {token}",
                "appkey": self.cfg.app_key,
                "appsecret": self.cfg.app_secret,
                "tr_id": tr,
                "tr_cont": tr_cont,
                "custtype": self.cfg.custtype,
            }
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotDelivered(f"{path}: deadline passed before sending")
            read_timeout = self.cfg.order_timeout_s if method == "POST" else left
            try:
                resp = self.session.request(
                    method,
                    self.cfg.rest_url + path,
                    params=params,
                    json=body,
                    headers=headers,
                    timeout=(min(self.cfg.connect_timeout_s, left), read_timeout),
                )
            except requests.RequestException as exc:
                raise _transport_error(exc, f"{tr} {path}") from None
            data = wire.parse_body(resp.status_code, resp.text)
            try:
                wire.check_envelope(resp.status_code, data)
            except RateLimited as exc:
                self.rate_limited += 1
                self.limiter.pause(self.cfg.rate_limit_backoff_s)
                logger.warning("KIS {} {}: {}; everyone on the key pauses", tr, exc.code, exc)
                if time.monotonic() + self.cfg.rate_limit_backoff_s >= deadline:
                    raise
                continue
            except TokenExpired:
                if token_retried:
                    raise
                token_retried = True
                self.token_retries += 1
                self.tokens.invalidate(token)
                continue
            return data, resp.headers.get("tr_cont", "").strip()

    def pages(
        self, path: str, tr: str, params: dict[str, str], deadline: float, rows_key: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every page of a paged GET: (all rows under rows_key, each page's body).
        Continues while tr_cont is F/M, copying ctx_area_fk100/nk100 (3.3)."""
        rows: list[dict[str, Any]] = []
        bodies: list[dict[str, Any]] = []
        query = dict(params, CTX_AREA_FK100="", CTX_AREA_NK100="")
        cont = ""
        for _ in range(self.cfg.max_pages):
            data, more = self.request(
                "GET", path, tr, params=query, tr_cont=cont, deadline=deadline
            )
            bodies.append(data)
            page = data.get(rows_key) or []
            if not isinstance(page, list):
                raise BadResponse("BAD_PAGE", f"{tr} {rows_key} is not a list")
            rows.extend(page)
            if more not in MORE:
                return rows, bodies
            query["CTX_AREA_FK100"] = wire.field(data, "ctx_area_fk100")
            query["CTX_AREA_NK100"] = wire.field(data, "ctx_area_nk100")
            cont = "N"
            if self.cfg.page_delay_s:
                time.sleep(self.cfg.page_delay_s)
        raise BadResponse("TOO_MANY_PAGES", f"{tr}: more than {self.cfg.max_pages} pages")

    # ------------------------------------------------------------------ endpoints (4)
    def account(self) -> dict[str, str]:
        return {"CANO": self.cfg.cano, "ACNT_PRDT_CD": self.cfg.prdt}

    def order_cash(
        self, side: str, symbol: str, qty: int, price: int, dvsn: str, deadline: float
    ) -> dict[str, Any]:
        """-> output {KRX_FWDG_ORD_ORGNO, ODNO, ORD_TMD}. Keys UPPER, values strings (3.1)."""
        body = {
            **self.account(),
            "PDNO": symbol,
            "ORD_DVSN": dvsn,
            "ORD_QTY": str(qty),
            "ORD_UNPR": str(price) if dvsn in wire.PRICED_ORD_DVSN else "0",
        }
        if self.cfg.exchange:
            body["EXCG_ID_DVSN_CD"] = self.cfg.exchange
        data, _ = self.request(
            "POST", wire.ORDER_CASH_PATH, wire.tr_id(side, self.cfg.mode), body=body,
            deadline=deadline,
        )  # fmt: skip
        return _output(data)

    def cancel(self, order_no: str, branch: str, deadline: float) -> dict[str, Any]:
        """Cancel the whole remainder of an order (RVSE_CNCL_DVSN_CD 02, QTY_ALL_ORD_YN Y)."""
        body = {
            **self.account(),
            "KRX_FWDG_ORD_ORGNO": branch,
            "ORGN_ODNO": order_no,
            "ORD_DVSN": "00",
            "RVSE_CNCL_DVSN_CD": "02",
            "ORD_QTY": "0",
            "ORD_UNPR": "0",
            "QTY_ALL_ORD_YN": "Y",
        }
        if self.cfg.exchange:
            body["EXCG_ID_DVSN_CD"] = self.cfg.exchange
        data, _ = self.request(
            "POST", wire.ORDER_RVSECNCL_PATH, wire.tr_id("rvsecncl", self.cfg.mode), body=body,
            deadline=deadline,
        )  # fmt: skip
        return _output(data)

    def daily_ccld(self, day: str, deadline: float, open_only: bool = False) -> list[wire.OrderRow]:
        params = {
            **self.account(),
            "INQR_STRT_DT": day,
            "INQR_END_DT": day,
            "SLL_BUY_DVSN_CD": "00",
            "PDNO": "",
            "ORD_GNO_BRNO": "",
            "ODNO": "",
            "CCLD_DVSN": "02" if open_only else "00",
            "INQR_DVSN": "01",
            "INQR_DVSN_1": "",
            "INQR_DVSN_3": "00",
            "EXCG_ID_DVSN_CD": self.cfg.exchange or "KRX",
        }
        rows, _ = self.pages(
            wire.DAILY_CCLD_PATH, wire.tr_id("daily_ccld", self.cfg.mode), params, deadline,
            "output1",
        )  # fmt: skip
        return [wire.parse_order_row(r) for r in rows]

    def open_orders(self, day: str, deadline: float) -> list[dict[str, Any]]:
        """Cancellable orders: inquire-psbl-rvsecncl (live); paper has no such API, so
        inquire-daily-ccld CCLD_DVSN=02 filtered on rmn_qty > 0 (4.8). Rows as
        {odno, pdno, side, qty, psbl_qty, branch}."""
        if self.cfg.mode == "paper":
            return [
                {
                    "odno": r.order_no, "pdno": r.symbol, "side": r.side, "qty": r.qty,
                    "psbl_qty": r.remaining, "branch": r.branch,
                }
                for r in self.daily_ccld(day, deadline, open_only=True)
                if r.remaining > 0 and not r.is_amendment
            ]  # fmt: skip
        params = {**self.account(), "INQR_DVSN_1": "1", "INQR_DVSN_2": "0"}
        rows, _ = self.pages(
            wire.PSBL_RVSECNCL_PATH, wire.tr_id("psbl_rvsecncl", "live"), params, deadline,
            "output",
        )  # fmt: skip
        out = []
        for r in rows:
            side = wire.field(r, "sll_buy_dvsn_cd")
            out.append(
                {
                    "odno": wire.norm_odno(wire.field(r, "odno")),
                    "pdno": wire.field(r, "pdno").strip(),
                    "side": wire.Side.SELL if side == "01" else wire.Side.BUY,
                    "qty": wire.to_int(wire.field(r, "ord_qty"), "ord_qty"),
                    "psbl_qty": wire.to_int(wire.field(r, "psbl_qty"), "psbl_qty"),
                    "branch": wire.field(r, "ord_gno_brno").strip(),
                }
            )
        return out

    def balance(self, deadline: float) -> tuple[int, dict[str, int]]:
        params = {
            **self.account(),
            "AFHR_FLPR_YN": "N",
            "OFL_YN": "",
            "INQR_DVSN": "02",
            "UNPR_DVSN": "01",
            "FUND_STTL_ICLD_YN": "N",
            "FNCG_AMT_AUTO_RDPT_YN": "N",
            "PRCS_DVSN": "00",
        }
        rows, bodies = self.pages(
            wire.BALANCE_PATH, wire.tr_id("balance", self.cfg.mode), params, deadline, "output1"
        )
        return wire.parse_balance(rows, bodies[-1].get("output2"))

    def buying_power(self, symbol: str, price: int, deadline: float) -> int:
        """Cash orderable for `symbol` without margin (nrcvb_buy_amt, 4.7)."""
        params = {
            **self.account(),
            "PDNO": symbol,
            "ORD_UNPR": str(price),
            "ORD_DVSN": "01",
            "CMA_EVLU_AMT_ICLD_YN": "N",
            "OVRS_ICLD_YN": "N",
        }
        data, _ = self.request(
            "GET", wire.PSBL_ORDER_PATH, wire.tr_id("psbl_order", self.cfg.mode), params=params,
            deadline=deadline,
        )  # fmt: skip
        return wire.to_int(wire.field(_output(data), "nrcvb_buy_amt"), "nrcvb_buy_amt")


def _output(data: dict[str, Any]) -> dict[str, Any]:
    out = data.get("output")
    if not isinstance(out, dict):
        raise BadResponse("NO_OUTPUT", "answer without an output object")
    return out
