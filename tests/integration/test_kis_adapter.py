"""The KIS adapter against the fake KIS server (tests/brokers/kis_server.py): real HTTP and
WebSocket servers on 127.0.0.1, the real adapter with its threads, inproc socket and files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from protocol.enums import OrderType, Side, TimeInForce
from protocol.messages import SubmitOrder
from services.execution.adapters.base import (
    AdapterEvent,
    CancelRejected,
    Fill,
    NoticeGap,
    OrderClosed,
    SubmitAccepted,
    SubmitRejected,
)
from services.execution.adapters.kis.adapter import KisAdapter
from services.runtime.settings import Settings
from tests.brokers.kis_server import FakeKis
from tests.kit import eventually


def make_settings(fake: FakeKis, var: Path, **kis: Any) -> Settings:
    return Settings.model_validate(
        {
            "runtime": {"var_dir": str(var)},
            "session": {"clock": "exchange"},
            "broker": {
                "type": "kis",
                "mode": fake.mode,
                "request_timeout_ms": 1000,
                "kis": {
                    **fake.settings_overrides(),
                    "paper_rate_per_s": 50,
                    "live_rate_per_s": 50,
                    "rate_limit_backoff_ms": 200,
                    "ws_backoff_min_ms": 100,
                    "ws_backoff_max_ms": 500,
                    "cancel_confirm_ms": 1000,
                    "order_timeout_ms": 1000,
                    **kis,
                },
            },
        }
    )


class Harness:
    def __init__(self, adapter: KisAdapter, ctx: zmq.Context[Any]) -> None:
        self.adapter = adapter
        self.poller = zmq.Poller()
        for s in adapter.poll_sockets():
            self.poller.register(s, zmq.POLLIN)
        self.seen: list[AdapterEvent] = []

    def pump(self, timeout_ms: int = 50) -> None:
        for sock, _ in self.poller.poll(timeout_ms):
            self.seen.extend(self.adapter.handle(sock))  # type: ignore[arg-type]

    def wait_for(self, kind: Any, timeout: float = 10.0, **match: Any) -> Any:
        def found() -> Any:
            self.pump()
            for ev in self.seen:
                if isinstance(ev, kind) and all(getattr(ev, k) == v for k, v in match.items()):
                    return ev
            return None

        return eventually(found, timeout, interval=0.01, message=f"{kind} {match}")

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.seen if isinstance(e, kind)]


@pytest.fixture
def fake() -> Iterator[FakeKis]:
    with FakeKis(mode="paper") as f:
        yield f


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    c: zmq.Context[Any] = zmq.Context()
    yield c
    c.term()


def run(fake: FakeKis, tmp_path: Path, ctx: zmq.Context[Any], **kis: Any) -> Harness:
    adapter = KisAdapter(make_settings(fake, tmp_path / "var", **kis), env=fake.env())
    adapter.start(ctx)
    return Harness(adapter, ctx)


@pytest.fixture
def h(fake: FakeKis, tmp_path: Path, ctx: zmq.Context[Any]) -> Iterator[Harness]:
    harness = run(fake, tmp_path, ctx)
    # the notice stream is live once subscribed (a NoticeGap says so)
    harness.wait_for(NoticeGap)
    harness.seen.clear()
    yield harness
    harness.adapter.close()


def order(qty: int = 10, price: int = 70_000, side: Side = Side.BUY, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        client_order_id="c1", intent_id="i1", strategy="s", symbol="005930", side=side,
        qty=qty, price=price, intent_ns=time.time_ns(), **kw,
    )  # fmt: skip


def test_submit_accepted_then_fill_notice(fake: FakeKis, h: Harness) -> None:
    h.adapter.submit(1, order())
    acc = h.wait_for(SubmitAccepted, ref=1)
    assert acc.order_no == fake.order_nos()[0]
    fake.fill(acc.order_no, 4, 70_000)
    fill = h.wait_for(Fill, order_no=acc.order_no)
    assert (fill.fill_no, fill.qty, fill.price, fill.leaves_qty) == (4, 4, 70_000, 6)
    fake.fill(acc.order_no, 6, 69_900)
    fill2 = h.wait_for(Fill, fill_no=10)
    assert (fill2.qty, fill2.price, fill2.leaves_qty) == (6, 69_900, 0)
    # the queries tell the same story, with the same fill numbers
    orders = h.adapter.orders_today(5.0)
    assert [(o.order_no, o.qty, o.price, o.filled_qty, o.status) for o in orders] == [
        (acc.order_no, 10, 70_000, 10, "filled")
    ]
    fills = h.adapter.fills_today(5.0)
    assert [(f.fill_no, f.qty, f.price) for f in fills] == [(4, 4, 70_000), (10, 6, 69_900)]
    cash, holdings = h.adapter.balance(5.0)
    assert holdings == {"005930": 10}
    assert cash == 100_000_000 - 4 * 70_000 - 6 * 69_900


def test_cancel_closes_the_order(fake: FakeKis, h: Harness) -> None:
    h.adapter.submit(1, order())
    acc = h.wait_for(SubmitAccepted, ref=1)
    fake.fill(acc.order_no, 3, 70_000)
    h.wait_for(Fill)
    h.adapter.cancel(2, acc.order_no)
    closed = h.wait_for(OrderClosed, order_no=acc.order_no)
    assert (closed.status, closed.leaves_qty) == ("canceled", 7)
    [o] = h.adapter.orders_today(5.0)
    assert (o.status, o.filled_qty) == ("canceled", 3)
    # a second cancel: nothing left, KIS refuses
    h.adapter.cancel(3, acc.order_no)
    rej = h.wait_for(CancelRejected, ref=3)
    assert rej.code == "APBK0344"


def test_unanswered_cancel_is_sent_again(fake: FakeKis, h: Harness) -> None:
    h.adapter.submit(1, order())
    acc = h.wait_for(SubmitAccepted, ref=1)
    fake.knobs.drop_next_cancels = 1  # the first cancel gets no answer (dropped connection)
    h.adapter.cancel(2, acc.order_no)
    closed = h.wait_for(OrderClosed, order_no=acc.order_no)
    assert (closed.status, closed.leaves_qty) == ("canceled", 10)
    assert fake.stats.requests["/uapi/domestic-stock/v1/trading/order-rvsecncl"] == 2
    assert not h.of(CancelRejected)


def test_fill_notice_before_the_order_answer(fake: FakeKis, h: Harness) -> None:
    fake.knobs.fill_before_answer = 4
    h.adapter.submit(1, order())
    acc = h.wait_for(SubmitAccepted, ref=1)
    fill = h.wait_for(Fill, order_no=acc.order_no)
    assert h.seen.index(fill) < h.seen.index(acc)  # execution holds it until the ack
    assert (fill.fill_no, fill.qty, fill.leaves_qty) == (4, 4, 6)
    h.adapter.cancel(2, acc.order_no)  # the branch from the answer reached the ledger
    closed = h.wait_for(OrderClosed, order_no=acc.order_no)
    assert closed.leaves_qty == 6


def test_no_token_means_not_sent(fake: FakeKis, h: Harness) -> None:
    fake.knobs.token_broken = True  # the token request gets no answer
    h.adapter.submit(1, order())
    rej = h.wait_for(SubmitRejected, ref=1)
    assert rej.code == "NOT_SENT" and "no access token" in rej.message
    assert fake.stats.order_posts == 0


def test_business_reject(fake: FakeKis, h: Harness) -> None:
    fake.knobs.reject_next = ("APBK0919", "주문가능금액을 초과 했습니다")
    h.adapter.submit(1, order())
    rej = h.wait_for(SubmitRejected, ref=1)
    assert rej.code == "APBK0919" and "초과" in rej.message


def test_unsupported_order_is_refused_before_sending(fake: FakeKis, h: Harness) -> None:
    h.adapter.submit(1, order(tif=TimeInForce.IOC))  # paper takes 00-04 only
    rej = h.wait_for(SubmitRejected, ref=1)
    assert rej.code == "KIS_UNSUPPORTED"
    assert fake.stats.order_posts == 0


def test_post_timeout_is_unknown_not_rejected(fake: FakeKis, h: Harness) -> None:
    """The fake accepts the order but answers after the client gave up: no SubmitRejected;
    the order is at the broker once, and reconciliation finds it."""
    fake.knobs.order_delay_s = 2.0
    h.adapter.submit(1, order())
    time.sleep(1.5)  # the client's read timeout (order_timeout_ms=1000) has passed
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        h.pump()
    assert not h.of(SubmitRejected) and not h.of(SubmitAccepted)
    assert fake.stats.order_posts == 1  # never re-sent
    fake.knobs.order_delay_s = 0.0
    orders = h.adapter.orders_today(5.0)
    assert [o.status for o in orders] == ["open"]
    assert h.adapter.counters["unknown_outcomes"] == 1


def test_rate_limit_backs_off_and_succeeds(fake: FakeKis, h: Harness) -> None:
    fake.knobs.rate_limit_next = 2
    h.adapter.submit(1, order())
    acc = h.wait_for(SubmitAccepted, ref=1)
    assert acc.order_no
    assert fake.stats.rate_limited == 2
    assert h.adapter.worker_rest.rate_limited == 2
    assert fake.stats.order_posts == 1


def test_rate_limit_past_the_send_by_time_is_a_reject(fake: FakeKis, h: Harness) -> None:
    fake.knobs.rate_limit_next = 100  # refused at the gateway every time: nothing placed
    h.adapter.submit(1, order())
    rej = h.wait_for(SubmitRejected, ref=1)
    assert rej.code in ("EGW00201", "NOT_SENT")
    assert fake.stats.order_posts == 0


def test_cancel_without_a_notice_asks_for_a_reconcile(fake: FakeKis, h: Harness) -> None:
    h.adapter.submit(1, order())
    acc = h.wait_for(SubmitAccepted, ref=1)
    fake.knobs.notices = False  # paper may not send notices at all (kis.md 5.7)
    h.seen.clear()
    h.adapter.cancel(2, acc.order_no)
    gap = h.wait_for(NoticeGap)  # after cancel_confirm_ms
    assert acc.order_no in gap.detail and not h.of(OrderClosed)
    [o] = h.adapter.orders_today(5.0)
    assert (o.order_no, o.status, o.filled_qty) == (acc.order_no, "canceled", 0)


def test_processes_on_one_key_share_the_rate_limit(
    fake: FakeKis, tmp_path: Path, ctx: zmq.Context[Any]
) -> None:
    """Two adapters on one key (as two processes would be), 2/s by settings: together they
    send 2 a second, not 4 (the window is a file both use)."""
    import threading

    settings = make_settings(fake, tmp_path / "var", paper_rate_per_s=2)
    no_ws = {k: v for k, v in fake.env().items() if k != "KIS_HTS_ID"}  # one WS per key
    adapters = [KisAdapter(settings, env=no_ws) for _ in range(2)]
    for a in adapters:
        a.start(ctx)
    errors: list[Exception] = []

    def query(a: KisAdapter) -> None:
        try:
            for _ in range(4):
                a.balance(10.0)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=query, args=(a,)) for a in adapters]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for a in adapters:
            a.close()
    assert errors == []
    arrivals = sorted(fake.stats.arrivals)
    assert len(arrivals) == 8
    # unshared, the first four would all arrive at once; shared, the 3rd and 4th wait for the
    # window (1.05 s) to pass the 1st and 2nd
    assert arrivals[2] - arrivals[0] >= 0.9 and arrivals[3] - arrivals[1] >= 0.9
    assert arrivals[7] - arrivals[0] >= 2.9
    assert fake.stats.tokens_issued == 1  # and one token, issued by whichever came first


def test_expired_token_is_reissued_once(
    fake: FakeKis, tmp_path: Path, ctx: zmq.Context[Any]
) -> None:
    h = run(fake, tmp_path, ctx, token_min_interval_s=0)
    try:
        _expired_token(fake, h)
    finally:
        h.adapter.close()


def _expired_token(fake: FakeKis, h: Harness) -> None:
    assert h.adapter.orders_today(5.0) == []  # a token is issued and cached
    assert fake.stats.tokens_issued == 1
    fake.token_interval_s = 0.0
    fake.expire_tokens()  # mid-session: EGW00123
    h.adapter.submit(1, order())
    h.wait_for(SubmitAccepted, ref=1)
    assert fake.stats.tokens_issued == 2
    assert h.adapter.worker_rest.token_retries == 1


def test_dropped_websocket_reconnects_and_reports_a_gap(fake: FakeKis, h: Harness) -> None:
    h.adapter.submit(1, order())
    acc = h.wait_for(SubmitAccepted, ref=1)
    connects = fake.stats.subscribes
    fake.knobs.notices = False  # a fill while the stream is down: its notice is lost
    fake.drop_ws()
    fake.fill(acc.order_no, 5, 70_100)
    fake.knobs.notices = True
    gap = h.wait_for(NoticeGap)
    assert "subscribed" in gap.detail
    assert fake.stats.subscribes == connects + 1
    assert not h.of(Fill)
    # execution reconciles on the gap: the fill comes from the query, numbered as a notice
    # would have numbered it
    fills = h.adapter.fills_today(5.0)
    assert [(f.order_no, f.fill_no, f.qty, f.price) for f in fills] == [
        (acc.order_no, 5, 5, 70_100)
    ]
    # later notices go on from there. A notice in the same KST second as that query may be
    # one the query already counted: it is absorbed and a NoticeGap asks for a reconcile,
    # which then finds it if it was new. Either way it is counted once.
    h.seen.clear()
    fake.fill(acc.order_no, 5, 70_000)
    ev = h.wait_for(Fill | NoticeGap)
    if isinstance(ev, NoticeGap):
        assert "same second" in ev.detail
    fills = h.adapter.fills_today(5.0)
    assert [(f.fill_no, f.qty, f.price) for f in fills] == [(5, 5, 70_100), (10, 5, 70_000)]
    assert len(h.of(Fill)) <= 1


def test_unanswered_subscription_gets_a_new_session(
    fake: FakeKis, tmp_path: Path, ctx: zmq.Context[Any]
) -> None:
    fake.knobs.ignore_subscribe = True
    h = run(fake, tmp_path, ctx)
    h.adapter.subscribe_answer_s = 0.3
    try:
        eventually(lambda: fake.stats.ws_connects >= 2, message="a new session")
        h.pump()
        assert not h.of(NoticeGap)
        assert h.adapter.broker_down_ms(time.monotonic()) > 0  # no notices: not "up"
        fake.knobs.ignore_subscribe = False
        h.wait_for(NoticeGap)
        assert h.adapter.broker_down_ms(time.monotonic()) == 0
    finally:
        h.adapter.close()


def test_malformed_frame_reports_a_gap(fake: FakeKis, h: Harness) -> None:
    fake.send_raw("1|H0STCNI9|001|not-base64-at-all")
    h.wait_for(NoticeGap)
    assert h.adapter.counters["bad_frames"] == 1
    fake.pingpong()  # answered with a pong frame, the session stays up
    h.adapter.submit(1, order())
    acc = h.wait_for(SubmitAccepted, ref=1)
    fake.fill(acc.order_no, 10, 70_000)
    h.wait_for(Fill)


@pytest.mark.parametrize("layout", ["26b", "23"])
def test_other_notice_layouts(fake: FakeKis, h: Harness, layout: str) -> None:
    fake.knobs.layout = layout
    h.adapter.submit(1, order())
    acc = h.wait_for(SubmitAccepted, ref=1)
    fake.fill(acc.order_no, 10, 70_000)
    fill = h.wait_for(Fill)
    assert (fill.fill_no, fill.qty, fill.leaves_qty) == (10, 10, 0)
    assert h.adapter.layouts_seen == {layout}


def test_paging_and_restart_keep_fill_numbers(
    fake: FakeKis, tmp_path: Path, ctx: zmq.Context[Any]
) -> None:
    """20 orders (2 pages at 15) and a restarted adapter: the same fills, the same ids."""
    h = run(fake, tmp_path, ctx)
    try:
        h.wait_for(NoticeGap)
        for ref in range(1, 21):  # one at a time: a job queued past its send-by time
            h.adapter.submit(ref, order(qty=2))  # is refused unsent, by design
            h.wait_for(SubmitAccepted, ref=ref)
        first = h.of(SubmitAccepted)[0].order_no
        fake.fill(first, 1, 70_000)
        h.wait_for(Fill)
        before = h.adapter.fills_today(5.0)
        assert len(h.adapter.orders_today(5.0)) == 20
    finally:
        h.adapter.close()
    fake.fill(first, 1, 70_200, notify=False)  # while no adapter runs
    h2 = run(fake, tmp_path, ctx)
    try:
        after = h2.adapter.fills_today(5.0)
        assert after[: len(before)] == before
        assert [(f.fill_no, f.qty, f.price) for f in after] == [(1, 1, 70_000), (2, 1, 70_200)]
    finally:
        h2.adapter.close()


def test_not_delivered_when_kis_is_unreachable(tmp_path: Path, ctx: zmq.Context[Any]) -> None:
    fake = FakeKis(mode="paper").start()
    settings = make_settings(fake, tmp_path / "var")
    fake.stop()  # nothing listens there now
    adapter = KisAdapter(settings, env=fake.env())
    adapter.start(ctx)
    h = Harness(adapter, ctx)
    try:
        adapter.submit(1, order())
        rej = h.wait_for(SubmitRejected, ref=1)
        assert rej.code == "NOT_SENT"
        assert adapter.broker_down_ms(time.monotonic() + 1) > 0
    finally:
        adapter.close()


def test_live_mode_open_orders(tmp_path: Path, ctx: zmq.Context[Any]) -> None:
    with FakeKis(mode="live") as fake:
        h = run(fake, tmp_path, ctx)
        try:
            h.wait_for(NoticeGap)
            h.adapter.submit(1, order(order_type=OrderType.LIMIT, tif=TimeInForce.IOC))
            acc = h.wait_for(SubmitAccepted, ref=1)
            fake.fill(acc.order_no, 2, 70_000)
            rows = h.adapter.open_orders(5.0)
            assert [(r["odno"], r["psbl_qty"]) for r in rows] == [(acc.order_no, 8)]
            assert fake.stats.requests.get("/uapi/domestic-stock/v1/trading/inquire-psbl-rvsecncl")
            power = h.adapter.query_rest.buying_power("005930", 70_000, time.monotonic() + 5)
            assert power == fake.cash
        finally:
            h.adapter.close()


# ------------------------------------------------------------------ the execution process
def test_execution_process_trades_through_kis(tmp_path: Path) -> None:
    """The real execution process with broker.type=kis against the fake: an order is
    accepted and filled by a WebSocket notice, a second one cancelled; after a SIGKILL and a
    restart the journal still has each fill once and the position equals the fake's balance."""
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
        OrderRejected,
    )
    from services.runtime import client, ids
    from tests.integration.test_execution_process import FakeControl

    var = tmp_path / "var"
    run_dir = var / "run"
    run_dir.mkdir(parents=True)
    control = FakeControl(run_dir)
    control.start()
    fake = FakeKis(mode="paper").start()
    env = {
        **os.environ,
        **fake.env(),
        "QTS_RUNTIME__VAR_DIR": str(var),
        "QTS_BROKER__TYPE": "kis",
        "QTS_BROKER__MODE": "paper",
        "QTS_SESSION__CLOCK": "exchange",
        # a replay's clock is not the wall clock: execution then leaves session gating to
        # others, so this test runs at any hour
        "QTS_OBSERVER__SOURCE": "replay",
        "QTS_OBSERVER__REPLAY_PATH": str(tmp_path / "none.qtsrec"),
        "QTS_BROKER__KIS__PAPER_REST_URL": fake.rest_url,
        "QTS_BROKER__KIS__PAPER_WS_URL": fake.ws_url,
        "QTS_BROKER__KIS__PAPER_RATE_PER_S": "50",
        "QTS_BROKER__KIS__WS_BACKOFF_MIN_MS": "100",
        "QTS_BROKER__KIS__ORDER_TIMEOUT_MS": "1000",
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
        fake.fill(acc.broker_order_no, 10, 69_900)
        filled = eventually(
            lambda: next((e for e in drain() if isinstance(e, OrderFilled)), None), 10
        )
        assert (filled.qty, filled.price, filled.leaves_qty) == (10, 69_900, 0)
        assert filled.fill_id == ids.fill_id(acc.broker_order_no, 10)

        second = submit("i2", 5)
        eventually(lambda: len([e for e in drain() if isinstance(e, OrderAccepted)]) == 2, 10)
        push.send(codec.encode(CancelOrder(client_order_id=second.client_order_id, strategy="s")))
        eventually(lambda: any(isinstance(e, OrderCanceled) for e in drain()), 10)
        assert fake.stats.order_posts == 2

        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        proc = start()
        eventually(lambda: call("ping")["status"] == "ready", 20, message="ready again")
        fills = call("fills")["fills"]
        assert [(f["qty"], f["price"]) for f in fills] == [(10, 69_900)]
        rows = {r["client_order_id"]: r["status"] for r in call("orders")["orders"]}
        assert rows[first.client_order_id] == "FILLED"
        assert rows[second.client_order_id] == "CANCELED"
        assert fake.holdings == {"005930": 10}
        assert fake.stats.order_posts == 2  # nothing re-sent after the restart

        # a POST that times out after KIS accepted the order: unknown, then found by the
        # reconcile and accepted, never sent twice
        seen.clear()
        fake.knobs.order_delay_s = 2.5  # longer than order_timeout_ms (1000)
        third = submit("i3", 3)
        acc3 = eventually(
            lambda: next((e for e in drain() if isinstance(e, OrderAccepted)), None), 15
        )
        assert acc3.client_order_id == third.client_order_id
        assert acc3.broker_order_no == fake.order_nos()[-1]
        assert not [e for e in seen if isinstance(e, OrderRejected)]
        eventually(lambda: call("ping")["counters"].get("unknown_outcomes") == 1)
        assert fake.stats.order_posts == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        push.close(0)
        sub.close(0)
        ctx.term()
        fake.stop()
        control.done.set()
        control.join(2)
    assert code == 0
