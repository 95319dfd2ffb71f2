"""The Kiwoom REST client against the fake Kiwoom's real HTTP server: token issue and
renewal (KST expiry), both error forms, 1700 back-off, continuation headers, transport
outcomes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.enums import Side
from services.execution.adapters.common.errors import (
    AuthError,
    BadResponse,
    NotDelivered,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    TokenExpired,
)
from services.execution.adapters.common.tokens import TokenCache
from services.execution.adapters.kiwoom.rest import KiwoomConfig, KiwoomRest, Limits, shared_state
from services.runtime.settings import BrokerSettings, KiwoomSettings, RuntimeSettings, Settings
from tests.brokers.kiwoom_server import FakeKiwoom, FakeOrder, env_for, settings_for


@pytest.fixture(params=["bracketed", "four_digit"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeKiwoom]:
    server = FakeKiwoom(error_form=request.param).start()
    yield server
    server.stop()


def client(fake: FakeKiwoom, tmp_path: Path, **kw: object) -> KiwoomRest:
    options: dict[str, object] = {"mock_rate_per_s": 1000, "query_burst": 1000, **kw}
    cfg = KiwoomConfig.from_settings(settings_for(fake, tmp_path, **options), env_for(fake))
    issuer = KiwoomRest(cfg, None, None)
    rest = KiwoomRest(cfg, shared_state(cfg, issuer), Limits(cfg), sleep=lambda s: None)
    rest.issuer = issuer  # type: ignore[attr-defined]  # closed by done()
    return rest


def done(rest: KiwoomRest) -> None:
    rest.issuer.close()  # type: ignore[attr-defined]
    rest.close()


def add_open_orders(fake: FakeKiwoom, n: int) -> None:
    for i in range(n):
        no = f"{900 + i:07d}"
        fake.orders[no] = FakeOrder(no, "005930", "BUY", 10, 70000, "0", "KRX", "090000",
                                    kind="+매수")  # fmt: skip


def test_token_issue_and_headers(fake: FakeKiwoom, tmp_path: Path) -> None:
    rest = client(fake, tmp_path)
    try:
        rest.call("kt00001", "/api/dostk/acnt", {"qry_tp": "2"}, deadline=time.monotonic() + 5)
        rest.call("kt00001", "/api/dostk/acnt", {"qry_tp": "2"}, deadline=time.monotonic() + 5)
    finally:
        done(rest)
    assert fake.issued == 1  # cached, not issued per call
    api_id, body, headers = fake.calls[-1]
    assert api_id == "kt00001" and body == {"qry_tp": "2"}
    assert headers["authorization"].startswith("Bearer ")
    assert headers["content-type"] == "application/json;charset=UTF-8"
    token_call = next(c for c in fake.calls if c[0] == "au10001")
    assert token_call[1] == {
        "grant_type": "client_credentials", "appkey": fake.app_key, "secretkey": fake.app_secret,
    }  # fmt: skip


def test_token_renewed_before_expiry(fake: FakeKiwoom, tmp_path: Path) -> None:
    """expires_dt is KST: read as such, a one-hour token expires in one hour, not ten; it is
    renewed once less than renew_before_s is left, not at expiry."""
    fake.token_lifetime_s = 3600
    rest = client(fake, tmp_path)
    now = [time.time()]
    cache = TokenCache(tmp_path / "tok.json", rest.issue_token, 0.0, 600.0, clock=lambda: now[0])
    try:
        first = cache.get()
        assert abs(cache.expires_at - (time.time() + 3600)) < 5  # not 9 hours off
        now[0] += 2900  # 700 s left: still good
        assert cache.get() == first and fake.issued == 1
        now[0] += 200  # 500 s left: renewed before it lapses
        second = cache.get()
        assert second != first and fake.issued == 2
    finally:
        done(rest)


def test_invalid_token_reissued_once(fake: FakeKiwoom, tmp_path: Path) -> None:
    rest = client(fake, tmp_path)
    try:
        rest.call("kt00001", "/api/dostk/acnt", {"qry_tp": "2"}, deadline=time.monotonic() + 5)
        fake.expire_tokens()  # 8005 in either form
        rest.call("kt00001", "/api/dostk/acnt", {"qry_tp": "2"}, deadline=time.monotonic() + 5)
        assert rest.token_retries == 1 and fake.issued == 2
        # a token refused again right after a fresh one: an error, not a loop
        fake.token_lifetime_s = -10  # every new token is born expired
        fake.expire_tokens()
        with pytest.raises(TokenExpired):
            rest.call("kt00001", "/api/dostk/acnt", {"qry_tp": "2"}, deadline=time.monotonic() + 5)
    finally:
        done(rest)


def test_bad_keys_are_an_auth_error(fake: FakeKiwoom, tmp_path: Path) -> None:
    rest = client(fake, tmp_path)
    fake.app_secret = "another"  # the key pair no longer matches
    try:
        with pytest.raises(AuthError) as info:
            rest.issue_token()
        assert info.value.code == "8001"
    finally:
        done(rest)


def test_rate_limit_backs_off_and_retries(fake: FakeKiwoom, tmp_path: Path) -> None:
    rest = client(fake, tmp_path, rate_limit_retries=3)
    try:
        rest.call("kt00001", "/api/dostk/acnt", {"qry_tp": "2"}, deadline=time.monotonic() + 5)
        fake.rate_limit_next = 2
        rest.call("kt00001", "/api/dostk/acnt", {"qry_tp": "2"}, deadline=time.monotonic() + 5)
        assert rest.rate_limited == 2
        assert fake.api_calls("kt00001") == 4
        # everyone on the key was told to wait: the shared window file says until when
        window = tmp_path / "kiwoom" / f"rate-{rest.cfg.key_id}.json"
        state = json.loads(window.read_text())
        assert state["blocked_until"] > 0
        fake.rate_limit_next = 10  # more refusals than retries: the caller hears it
        with pytest.raises(RateLimited) as info:
            rest.call("kt00001", "/api/dostk/acnt", {"qry_tp": "2"}, deadline=time.monotonic() + 5)
        assert info.value.code == "1700"
        assert info.value.http_status == (429 if fake.error_form == "bracketed" else 200)
    finally:
        done(rest)


def test_continuation_follows_headers(fake: FakeKiwoom, tmp_path: Path) -> None:
    fake.page_size = 2
    add_open_orders(fake, 5)
    rest = client(fake, tmp_path)
    try:
        rows = rest.open_orders(time.monotonic() + 5)
        assert sorted(r.order_no for r in rows) == [f"{900 + i:07d}" for i in range(5)]
        pages = [c[2] for c in fake.calls if c[0] == "ka10075"]
        assert [(h.get("cont-yn"), h.get("next-key")) for h in pages] == [
            (None, None), ("Y", "2"), ("Y", "4"),
        ]  # fmt: skip
    finally:
        done(rest)
    rest = client(fake, tmp_path, max_pages=2)
    try:
        with pytest.raises(BadResponse, match="more than 2 pages"):
            rest.open_orders(time.monotonic() + 5)
    finally:
        done(rest)


def test_orders_and_business_refusal(fake: FakeKiwoom, tmp_path: Path) -> None:
    rest = client(fake, tmp_path)
    try:
        order_no, exchange = rest.order(Side.BUY, "005930", 10, 70000, "0", time.monotonic() + 5)
        assert (order_no, exchange) == ("0000001", "KRX")
        body = next(c[1] for c in fake.calls if c[0] == "kt10000")
        assert body == {"dmst_stex_tp": "KRX", "stk_cd": "005930", "ord_qty": "10",
                        "ord_uv": "70000", "trde_tp": "0", "cond_uv": ""}  # fmt: skip
        new_no = rest.modify(order_no, "005930", 5, 69900, "KRX", time.monotonic() + 5)
        assert new_no == "0000002" and fake.orders[new_no].orig_order_no == order_no
        cancel_no = rest.cancel(new_no, "005930", "KRX", time.monotonic() + 5)
        assert fake.orders[new_no].unfilled == 0 and cancel_no
        with pytest.raises(Rejected):
            rest.cancel(new_no, "005930", "KRX", time.monotonic() + 5)  # nothing left
        with pytest.raises(Rejected) as info:  # more than the cash
            rest.order(Side.BUY, "005930", 10**6, 70000, "0", time.monotonic() + 5)
        assert info.value.code == "2000"
        assert rest.forms.get("ok", 0) >= 3
    finally:
        done(rest)


def test_read_timeout_is_unknown_and_sent_once(fake: FakeKiwoom, tmp_path: Path) -> None:
    fake.hang_orders_s = 3.0
    rest = client(fake, tmp_path, order_timeout_ms=200)
    try:
        with pytest.raises(OutcomeUnknown):
            rest.order(Side.BUY, "005930", 1, 70000, "0", time.monotonic() + 5)
    finally:
        done(rest)
    assert fake.api_calls("kt10000") == 1 and len(fake.orders) == 1  # it did arrive


def test_no_connection_is_not_delivered(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    fake = FakeKiwoom()  # not started: only its keys are used
    cfg = KiwoomConfig.from_settings(
        Settings(
            runtime=RuntimeSettings(var_dir=tmp_path),
            broker=BrokerSettings(
                kiwoom=KiwoomSettings(
                    mock_rest_url=f"http://127.0.0.1:{port}", state_dir=tmp_path / "kw"
                )
            ),
        ),
        env_for(fake),
    )
    rest = KiwoomRest(cfg, None, None)
    try:
        with pytest.raises(NotDelivered):
            rest.issue_token()
    finally:
        rest.close()
