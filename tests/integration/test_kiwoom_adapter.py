"""The Kiwoom adapter against the fake Kiwoom (real HTTP and WebSocket servers on 127.0.0.1):
orders accepted and filled through REAL 00, cancels, a timed-out order POST (unknown, never
rejected, never re-sent), 1700 back-off, a dropped WebSocket (reconnect, LOGIN, REG,
NoticeGap), a second session on the key (SYSTEM R10001), malformed frames, PING echo, token
expiry, and the queries execution reconciles with."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket
import zmq

from protocol.enums import OrderType, Side, TimeInForce
from protocol.messages import SubmitOrder
from services.execution.adapters import make_adapter
from services.execution.adapters.base import (
    AdapterEvent,
    CancelRejected,
    Fill,
    NoticeGap,
    OrderClosed,
    SubmitAccepted,
    SubmitRejected,
)
from services.execution.adapters.kiwoom import wire
from services.execution.adapters.kiwoom.adapter import KiwoomAdapter
from tests.brokers.kiwoom_server import FakeKiwoom, env_for, settings_for
from tests.kit import eventually


class Harness:
    """An adapter started on its own zmq context, its events collected as they come."""

    def __init__(self, fake: FakeKiwoom, var: Path, **options: Any) -> None:
        self.fake = fake
        self.ctx: zmq.Context[Any] = zmq.Context()
        options = {"mock_rate_per_s": 1000, "query_burst": 1000, **options}
        self.adapter = KiwoomAdapter(settings_for(fake, var, **options), env_for(fake))
        self.adapter.start(self.ctx)
        self.events: list[AdapterEvent] = []

    def pump(self) -> list[AdapterEvent]:
        for sock in self.adapter.poll_sockets():
            if sock.poll(0):
                self.events.extend(self.adapter.handle(sock))
        return self.events

    def wait_for(self, kind: type, n: int = 1, timeout: float = 10.0) -> list[Any]:
        def enough() -> list[Any] | None:
            found = [e for e in self.pump() if isinstance(e, kind)]
            return found if len(found) >= n else None

        return eventually(enough, timeout, message=f"{n} x {kind.__name__}")

    def close(self) -> None:
        self.adapter.close()
        self.ctx.term()


@pytest.fixture
def fake() -> Iterator[FakeKiwoom]:
    server = FakeKiwoom(holdings={"000660": 5}).start()
    yield server
    server.stop()


@pytest.fixture
def harness(fake: FakeKiwoom, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(fake, tmp_path)
    h.wait_for(NoticeGap)  # the account feed is registered
    yield h
    h.close()


def order(symbol: str = "005930", side: Side = Side.BUY, qty: int = 10, price: int = 70000,
          order_type: OrderType = OrderType.LIMIT, tif: TimeInForce = TimeInForce.DAY,
          ) -> SubmitOrder:  # fmt: skip
    return SubmitOrder(
        client_order_id=f"c{time.monotonic_ns()}", intent_id="i", strategy="s", symbol=symbol,
        side=side, qty=qty, price=price, order_type=order_type, tif=tif, intent_ns=time.time_ns(),
    )  # fmt: skip


def test_submit_accept_fill_and_reconcile(harness: Harness, fake: FakeKiwoom) -> None:
    assert fake.logins == 1 and fake.regs == 1
    harness.adapter.submit(1, order(qty=10))
    accepted = harness.wait_for(SubmitAccepted)[0]
    assert accepted.ref == 1 and accepted.order_no in fake.orders
    no = accepted.order_no
    fake.fill(no, 4, 70000)
    fake.fill(no, 6, 69900)
    fills = harness.wait_for(Fill, 2)
    assert [(f.fill_no, f.qty, f.price, f.leaves_qty) for f in fills] == [
        (4, 4, 70000, 6), (10, 6, 69900, 0),
    ]  # fmt: skip
    assert harness.adapter.counters["balance_events"] == 2
    assert harness.adapter.live_holdings["005930"] == 10
    # the queries tell the same story: same fill numbers, so nothing is booked twice
    orders = harness.adapter.orders_today(5.0)
    assert [(o.order_no, o.status, o.filled_qty) for o in orders] == [(no, "filled", 10)]
    broker_fills = harness.adapter.fills_today(5.0)
    assert [(f.fill_no, f.qty, f.price) for f in broker_fills] == [(4, 4, 70000), (10, 6, 69900)]
    cash, holdings = harness.adapter.balance(5.0)
    assert cash == fake.cash and holdings == {"005930": 10, "000660": 5}
    assert harness.adapter.broker_down_ms(time.monotonic()) == 0


def test_unsupported_order_and_refusal(harness: Harness) -> None:
    harness.adapter.submit(1, order(order_type=OrderType.PRIORITY, tif=TimeInForce.IOC))
    harness.adapter.submit(2, order(qty=10**6))  # more than the cash: refused by Kiwoom
    rejected = harness.wait_for(SubmitRejected, 2)
    assert (rejected[0].ref, rejected[0].code) == (1, "KIWOOM_UNSUPPORTED")
    assert (rejected[1].ref, rejected[1].code) == (2, "2000")


def test_cancel(harness: Harness, fake: FakeKiwoom) -> None:
    harness.adapter.submit(1, order(qty=10))
    no = harness.wait_for(SubmitAccepted)[0].order_no
    fake.fill(no, 3, 70000)
    harness.wait_for(Fill)
    harness.adapter.cancel(2, no)
    closed = harness.wait_for(OrderClosed)[0]
    assert (closed.order_no, closed.status, closed.leaves_qty) == (no, "canceled", 7)
    cancel_body = next(c[1] for c in fake.calls if c[0] == "kt10003")
    assert cancel_body == {"dmst_stex_tp": "KRX", "orig_ord_no": no, "stk_cd": "005930",
                           "cncl_qty": "0"}  # fmt: skip
    harness.adapter.cancel(3, no)  # nothing left to cancel
    refused = harness.wait_for(CancelRejected)[0]
    assert (refused.ref, refused.order_no) == (3, no)
    # the 00 confirmation came before the first cancel's answer (handled before this one):
    # no confirmation is awaited after it, so no needless resynchronisation follows
    assert not harness.adapter.awaiting_close and no in harness.adapter.closed_orders
    statuses = {o.order_no: o.status for o in harness.adapter.orders_today(5.0)}
    assert statuses[no] == "canceled"


def test_ioc_remainder_expires(harness: Harness, fake: FakeKiwoom) -> None:
    harness.adapter.submit(1, order(qty=10, tif=TimeInForce.IOC))
    no = harness.wait_for(SubmitAccepted)[0].order_no
    assert fake.orders[no].trde_tp == "10"
    fake.fill(no, 2, 70000)
    fake.expire(no)
    closed = harness.wait_for(OrderClosed)[0]
    assert (closed.order_no, closed.status, closed.leaves_qty) == (no, "expired", 8)


def test_timed_out_post_is_unknown_and_never_resent(fake: FakeKiwoom, tmp_path: Path) -> None:
    h = Harness(fake, tmp_path, order_timeout_ms=300)
    try:
        h.wait_for(NoticeGap)
        fake.hang_orders_s = 2.0
        h.adapter.submit(1, order(qty=10))
        eventually(lambda: h.adapter.counters["unknown_outcomes"] == 1, 10)
        fake.hang_orders_s = 0.0
        h.pump()
        assert not [e for e in h.events if isinstance(e, SubmitAccepted | SubmitRejected)]
        assert fake.api_calls("kt10000") == 1
        # the order did reach Kiwoom: the query execution reconciles with shows it
        (placed,) = fake.orders.values()
        orders = eventually(lambda: h.adapter.orders_today(5.0), 5)
        assert [(o.order_no, o.status, o.qty) for o in orders] == [(placed.order_no, "open", 10)]
        # and its fills still reach execution through the account feed
        fake.fill(placed.order_no, 10, 70000)
        assert h.wait_for(Fill)[0].order_no == placed.order_no
        assert fake.api_calls("kt10000") == 1
    finally:
        h.close()


def test_rate_limit_back_off(fake: FakeKiwoom, tmp_path: Path) -> None:
    for form in ("bracketed", "four_digit"):
        fake.error_form = form
        h = Harness(fake, tmp_path / form)
        try:
            h.wait_for(NoticeGap)
            fake.rate_limit_next = 2
            h.adapter.submit(1, order())
            assert h.wait_for(SubmitAccepted)[0].ref == 1
            assert h.adapter.worker_rest.rate_limited == 2
        finally:
            h.close()
    assert fake.api_calls("kt10000") == 6  # 2 refused + 1 taken, per form


def test_dropped_websocket_reconnects_and_resyncs(harness: Harness, fake: FakeKiwoom) -> None:
    harness.adapter.submit(1, order(qty=10))
    no = harness.wait_for(SubmitAccepted)[0].order_no
    fake.drop_websockets()
    eventually(lambda: harness.adapter.broker_down_ms(time.monotonic()) > 0, 5)
    fake.fill(no, 4, 70000)  # while down: nobody hears it
    gaps = harness.wait_for(NoticeGap, 2)  # re-LOGIN, re-REG, then "resynchronise"
    assert "registered" in gaps[-1].detail
    assert fake.logins == 2 and fake.regs == 2
    assert harness.adapter.broker_down_ms(time.monotonic()) == 0
    # the reconcile finds the fill the feed missed, numbered as a notice would have been
    fills = harness.adapter.fills_today(5.0)
    assert [(f.fill_no, f.qty, f.price) for f in fills] == [(4, 4, 70000)]
    fake.fill(no, 6, 70100)  # and later notices continue from there
    fill = harness.wait_for(Fill)[0]
    assert (fill.fill_no, fill.qty, fill.price) == (10, 6, 70100)


def test_token_expiry_on_reconnect(harness: Harness, fake: FakeKiwoom) -> None:
    fake.expire_tokens()
    fake.drop_websockets()
    harness.wait_for(NoticeGap, 2, timeout=15)  # LOGIN refused (8005), new token, LOGIN
    assert fake.issued == 2 and fake.logins == 2
    harness.adapter.submit(1, order())
    assert harness.wait_for(SubmitAccepted)[0].ref == 1


def test_second_session_replaces_first(harness: Harness, fake: FakeKiwoom) -> None:
    token = harness.adapter.tokens.get()
    other = websocket.create_connection(fake.ws_url + "/api/dostk/websocket", timeout=5)
    try:
        other.send(wire.login_message(token))
        assert json.loads(other.recv())["return_code"] == 0
        eventually(lambda: harness.adapter.counters["sessions_replaced"] == 1, 5)
        eventually(lambda: harness.adapter.broker_down_ms(time.monotonic()) > 0, 5)
        # after the longest back-off the adapter logs in again (and the other is closed)
        harness.wait_for(NoticeGap, 2)
        assert fake.logins == 3
    finally:
        other.close()


def test_ping_echo_and_malformed_frames(harness: Harness, fake: FakeKiwoom) -> None:
    fake.ping()
    eventually(lambda: fake.sessions and fake.sessions[0].pongs == 1, 5)
    fake.system("R10002", "heartbeat")  # logged, not echoed, session kept
    fake.send_raw("{not json")
    fake.send_raw(json.dumps({"trnm": "REAL", "data": [{"type": "00", "values": {"913": "체결"}}]}))
    gaps = harness.wait_for(NoticeGap, 3)
    assert "unreadable" in gaps[1].detail and "9203" in gaps[2].detail
    assert harness.adapter.counters["bad_frames"] == 2
    assert fake.sessions[0].pongs == 1 and fake.logins == 1
    harness.adapter.submit(1, order())  # still trading
    no = harness.wait_for(SubmitAccepted)[0].order_no
    fake.fill(no, 10, 70000)
    assert harness.wait_for(Fill)[0].qty == 10


def test_market_data_feed_normalised(fake: FakeKiwoom) -> None:
    """0B / 0D over a session of its own, normalised by the wire functions (the observer
    will do this; wiring is a later step)."""
    answer = requests.post(
        fake.rest_url + wire.TOKEN_PATH,
        json={"grant_type": "client_credentials", "appkey": fake.app_key,
              "secretkey": fake.app_secret},
        headers={"api-id": wire.TOKEN_ID}, timeout=5,
    )  # fmt: skip
    token, _ = wire.parse_token(answer.json())
    ws = websocket.create_connection(fake.ws_url + "/api/dostk/websocket", timeout=5)
    try:
        ws.send(wire.login_message(token))
        assert json.loads(ws.recv())["trnm"] == "LOGIN"
        ws.send(wire.reg_message("2", ["005930"], ["0B", "0D"]))
        assert json.loads(ws.recv()) == {"trnm": "REG", "return_code": 0, "return_msg": ""}
        fake.trade("005930", 70100, 7, buy_side=False)
        fake.book("005930", best_ask=70200, best_bid=70100)
        trade_msg, book_msg = json.loads(ws.recv()), json.loads(ws.recv())
    finally:
        ws.close()
    (entry,) = wire.real_entries(trade_msg)
    t = wire.trade_from_0b(entry.item, entry.values, "20260105", 1, 1)
    assert (t.symbol, t.price, t.qty, t.aggressor) == ("005930", 70100, 7, Side.SELL)
    (entry,) = wire.real_entries(book_msg)
    b = wire.book_from_0d(entry.item, entry.values, "20260105", 1, 2)
    assert b.asks[0] == (70200, 100) and b.bids[0] == (70100, 200) and len(b.bids) == 10


def test_revoke_on_close_and_make_adapter(
    fake: FakeKiwoom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env_for(fake).items():
        monkeypatch.setenv(name, value)
    settings = settings_for(fake, tmp_path)
    settings = settings.model_copy(
        update={"broker": settings.broker.model_copy(update={"type": "kiwoom"})}
    )
    adapter = make_adapter(settings)
    assert isinstance(adapter, KiwoomAdapter)
    ctx: zmq.Context[Any] = zmq.Context()
    adapter.start(ctx)
    token = eventually(lambda: adapter.tokens.token, 5)
    adapter.close()
    ctx.term()
    assert fake.revoked == [token]


def test_restart_keeps_fill_numbers(fake: FakeKiwoom, tmp_path: Path) -> None:
    first = Harness(fake, tmp_path)
    try:
        first.wait_for(NoticeGap)
        first.adapter.submit(1, order(qty=10))
        no = first.wait_for(SubmitAccepted)[0].order_no
        fake.fill(no, 4, 70000)
        first.wait_for(Fill)
    finally:
        first.close()
    fake.fill(no, 3, 70200)  # while execution is down
    second = Harness(fake, tmp_path)
    try:
        second.wait_for(NoticeGap)
        fills = second.adapter.fills_today(5.0)
        assert [(f.fill_no, f.qty, f.price) for f in fills] == [(4, 4, 70000), (7, 3, 70200)]
        fake.fill(no, 3, 70100)
        fill = second.wait_for(Fill)[0]
        assert (fill.fill_no, fill.qty, fill.leaves_qty) == (10, 3, 0)
    finally:
        second.close()


def test_cancel_of_an_order_placed_elsewhere(harness: Harness, fake: FakeKiwoom) -> None:
    """kt10003 needs the stock code, which execution does not pass: an order this adapter
    did not place is looked up in the open orders (ka10075)."""
    from tests.brokers.kiwoom_server import FakeOrder

    fake.orders["0000900"] = FakeOrder(
        "0000900", "000660", "SELL", 5, 120000, "0", "KRX", "090000", kind="-매도"
    )
    harness.adapter.cancel(7, "0000900")
    closed = harness.wait_for(OrderClosed)[0]
    assert (closed.order_no, closed.status) == ("0000900", "canceled")
    assert next(c[1] for c in fake.calls if c[0] == "kt10003")["stk_cd"] == "000660"
    harness.adapter.cancel(8, "0000999")  # unknown anywhere: refused without sending
    refused = harness.wait_for(CancelRejected)[0]
    assert (refused.ref, refused.code) == (8, "NOT_OPEN")
    assert fake.api_calls("kt10003") == 1


# ------------------------------------------------------------------ the execution process
def test_execution_process_trades_through_kiwoom(fake: FakeKiwoom, tmp_path: Path) -> None:
    """The real execution process with broker.type=kiwoom against the fake: an order is
    accepted and filled partly then fully by 00 notices, a second one cancelled; after a
    SIGKILL and a restart the journal has each fill once, nothing was re-sent, and the
    position equals the fake's balance."""
    import os
    import signal
    import subprocess
    import sys

    from protocol import codec
    from protocol.endpoints import ctl_name, endpoint
    from protocol.messages import (
        CancelOrder,
        ExecEvent,
        IntentDenied,
        OrderAccepted,
        OrderCanceled,
        OrderFilled,
    )
    from services.runtime import client, ids
    from tests.integration.test_execution_process import FakeControl

    var = tmp_path / "var"
    run_dir = var / "run"
    run_dir.mkdir(parents=True)
    control = FakeControl(run_dir)
    control.start()
    env = {
        **os.environ,
        **env_for(fake),
        "QTS_RUNTIME__VAR_DIR": str(var),
        "QTS_BROKER__TYPE": "kiwoom",
        "QTS_BROKER__MODE": "paper",
        "QTS_SESSION__CLOCK": "exchange",
        # a replay's clock is not the wall clock: execution then leaves session gating to
        # others, so this test runs at any hour
        "QTS_OBSERVER__SOURCE": "replay",
        "QTS_OBSERVER__REPLAY_PATH": str(tmp_path / "none.qtsrec"),
        "QTS_BROKER__KIWOOM__MOCK_REST_URL": fake.rest_url,
        "QTS_BROKER__KIWOOM__MOCK_WS_URL": fake.ws_url,
        "QTS_BROKER__KIWOOM__MOCK_RATE_PER_S": "50",
        "QTS_BROKER__KIWOOM__QUERY_BURST": "50",
        "QTS_BROKER__KIWOOM__QUERY_PAGE_DELAY_MS": "0",
        "QTS_BROKER__KIWOOM__WS_BACKOFF_MIN_MS": "100",
    }

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "services.execution"], env=env, cwd=str(Path.cwd())
        )

    ctx: zmq.Context[Any] = zmq.Context()
    push, sub = ctx.socket(zmq.PUSH), ctx.socket(zmq.SUB)
    for sock in (push, sub):
        sock.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    push.connect(endpoint(run_dir, "orders"))
    sub.connect(endpoint(run_dir, "exec"))
    ctl = endpoint(run_dir, ctl_name("execution"))
    decode = codec.decoder("exec").decode
    seen: list[ExecEvent] = []

    def drain() -> list[ExecEvent]:
        while sub.poll(0):
            seen.append(decode(sub.recv()))
        return seen

    def call(command: str, **args: Any) -> Any:
        return client.call(ctl, command, args, timeout=2.0)

    def submit(name: str, qty: int, stale: bool = False) -> SubmitOrder:
        o = SubmitOrder(
            client_order_id=ids.client_order_id(name), intent_id=name, strategy="s",
            symbol="005930", side=Side.BUY, qty=qty, price=70_000,
            intent_ns=1 if stale else time.time_ns(),
        )  # fmt: skip
        push.send(codec.encode(o))
        return o

    proc = start()
    code = None
    try:
        eventually(lambda: call("ping")["status"] == "ready", 20, message="ready")
        probes = iter(range(1000))
        eventually(
            lambda: (
                submit(f"p{next(probes)}", 1, stale=True) is not None
                and any(isinstance(e, IntentDenied) for e in drain())
            ),
            message="exec SUB joined",
        )
        first = submit("i1", 10)
        acc = eventually(
            lambda: next((e for e in drain() if isinstance(e, OrderAccepted)), None), 10
        )
        assert acc.client_order_id == first.client_order_id
        fake.fill(acc.broker_order_no, 4, 70_000)
        fake.fill(acc.broker_order_no, 6, 69_900)
        eventually(lambda: len([e for e in drain() if isinstance(e, OrderFilled)]) == 2, 10)
        fills = [e for e in drain() if isinstance(e, OrderFilled)]
        assert [(f.qty, f.price, f.leaves_qty) for f in fills] == [(4, 70_000, 6), (6, 69_900, 0)]
        assert fills[1].fill_id == ids.fill_id(acc.broker_order_no, 10)

        second = submit("i2", 5)
        eventually(lambda: len([e for e in drain() if isinstance(e, OrderAccepted)]) == 2, 10)
        push.send(codec.encode(CancelOrder(client_order_id=second.client_order_id, strategy="s")))
        eventually(lambda: any(isinstance(e, OrderCanceled) for e in drain()), 10)
        assert fake.api_calls("kt10000") == 2

        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        proc = start()
        eventually(lambda: call("ping")["status"] == "ready", 20, message="ready again")
        fills_after = call("fills")["fills"]
        assert [(f["qty"], f["price"]) for f in fills_after] == [(4, 70_000), (6, 69_900)]
        rows = {r["client_order_id"]: r["status"] for r in call("orders")["orders"]}
        assert rows[first.client_order_id] == "FILLED"
        assert rows[second.client_order_id] == "CANCELED"
        assert fake.holdings["005930"] == 10
        assert fake.api_calls("kt10000") == 2  # nothing re-sent after the restart
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        push.close(0)
        sub.close(0)
        ctx.term()
        control.done.set()
        control.join(2)
    assert code == 0
    assert fake.revoked  # the token was revoked on the orderly stop


def test_partial_cancel_made_elsewhere_resyncs(harness: Harness, fake: FakeKiwoom) -> None:
    """A cancel of part of an order made outside QTS (HTS) must not close the order."""
    harness.adapter.submit(1, order(qty=10))
    no = harness.wait_for(SubmitAccepted)[0].order_no
    gaps = len([e for e in harness.pump() if isinstance(e, NoticeGap)])
    requests.post(
        fake.rest_url + "/api/dostk/ordr",
        json={"dmst_stex_tp": "KRX", "orig_ord_no": no, "stk_cd": "005930", "cncl_qty": "4"},
        headers={"api-id": "kt10003", "authorization": f"Bearer {harness.adapter.tokens.get()}"},
        timeout=5,
    ).raise_for_status()
    gap = harness.wait_for(NoticeGap, gaps + 1)[-1]
    assert "cancelled elsewhere" in gap.detail
    assert not [e for e in harness.pump() if isinstance(e, OrderClosed)]
    assert fake.orders[no].unfilled == 6
