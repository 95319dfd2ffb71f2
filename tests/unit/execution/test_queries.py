"""Broker queries on their own thread: the loop is woken when the answer is ready."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import zmq

from services.execution.adapters.base import BrokerOrder, BrokerUnavailable
from services.execution.queries import BrokerQueries
from tests.unit.execution.fakes import FakeAdapter


class SlowAdapter(FakeAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.fail: Exception | None = None

    def orders_today(self, timeout: float) -> list[BrokerOrder]:
        self.release.wait(5)
        if self.fail is not None:
            raise self.fail
        return super().orders_today(timeout)

    def balance(self, timeout: float) -> tuple[int, dict[str, int]]:
        return 1_000, {"005930": 3}


@pytest.fixture
def ctx() -> Any:
    c = zmq.Context()
    yield c
    c.term()


def test_the_loop_is_free_until_the_answer_wakes_it(ctx: zmq.Context[Any]) -> None:
    adapter = SlowAdapter()
    q = BrokerQueries(adapter, ctx)
    try:
        assert q.ask(1.0, "start")
        assert not q.ask(1.0, "periodic")  # one at a time
        assert q.wake.poll(50) == 0  # still asking: nothing to read, the loop goes on
        adapter.release.set()
        assert q.wake.poll(2_000)
        snap = q.take()
        assert (snap.cash, snap.holdings, snap.asked_ns > 0) == (1_000, {"005930": 3}, True)
        assert not q.busy and q.purpose == "start"
    finally:
        q.close()


@pytest.mark.parametrize(
    ("error", "text"),
    [(BrokerUnavailable("venue down"), "venue down"), (KeyError("odd"), "KeyError")],
)
def test_a_failed_query_wakes_the_loop_with_broker_unavailable(
    ctx: zmq.Context[Any], error: Exception, text: str
) -> None:
    adapter = SlowAdapter()
    adapter.fail = error
    adapter.release.set()
    q = BrokerQueries(adapter, ctx)
    try:
        assert q.ask(1.0, "due")
        assert q.wake.poll(2_000)
        with pytest.raises(BrokerUnavailable, match=text):
            q.take()
        assert q.ask(1.0, "due")  # free again
        assert q.wake.poll(2_000)
        with pytest.raises(BrokerUnavailable):
            q.take()
    finally:
        q.close()
