"""`halt --flatten` in the execution engine: strategy orders cancelled first, then every
position closed once with reduce-only orders at the daily limit, never sold twice."""

from __future__ import annotations

from pathlib import Path

from protocol.codes import Reason
from protocol.enums import OrderType, Side, TradingState
from protocol.messages import CancelOrder, Instrument, IntentDenied
from services.execution.adapters.base import Fill, OrderClosed, SubmitAccepted
from services.execution.engine import ExecutionEngine
from tests.unit.execution.fakes import NOW, FakeAdapter, make, order

R = TradingState.REDUCING
SEC = 1_000_000_000


def bought(engine: ExecutionEngine, adapter: FakeAdapter, intent: str, qty: int, no: str) -> None:
    """A strategy buy of qty shares, accepted as broker order `no` and filled in full."""
    engine.on_order(order(intent, qty=qty), TradingState.ACTIVE, True, NOW, 0)
    ref = adapter.submits[-1][0]
    engine.on_adapter([SubmitAccepted(ref, no, NOW)], NOW, 0)
    engine.on_adapter([Fill(no, 1, qty, 70_000, 0, NOW)], NOW, 0)


def limits(engine: ExecutionEngine) -> None:
    engine.limits["005930"] = Instrument(
        stream=1, seq=1, symbol="005930", base_price=70_000, upper_limit=91_000, lower_limit=49_000
    )


def test_flatten_sells_each_position_once_at_the_lower_limit(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    limits(engine)
    bought(engine, adapter, "b1", 10, "V1")
    bought(engine, adapter, "b2", 5, "V2")
    engine.begin_flatten(7)
    assert engine.flatten_step(R, True, NOW, 0) == (1, 15)
    ref, sell = adapter.submits[-1]
    assert (sell.side, sell.qty, sell.price, sell.order_type) == (
        Side.SELL,
        15,
        49_000,
        OrderType.LIMIT,
    )
    assert sell.reduce_only and sell.intent_id.startswith("flatten:7:s:005930:")
    # working: not sent again, even after the once-a-second retry pause
    engine.flatten_step(R, True, NOW, 2 * SEC)
    assert len(adapter.submits) == 3
    engine.on_adapter([SubmitAccepted(ref, "V3", NOW), Fill("V3", 1, 15, 69_000, 0, NOW)], NOW, 0)
    assert engine.flatten_step(R, True, NOW, 3 * SEC) == (0, 0)
    assert len(adapter.submits) == 3


def test_flatten_cancels_strategy_orders_and_waits_for_them(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    bought(engine, adapter, "b1", 10, "V1")
    engine.on_order(order("s1", qty=4, side=Side.SELL), TradingState.ACTIVE, True, NOW, 0)
    engine.on_adapter([SubmitAccepted(adapter.submits[-1][0], "V2", NOW)], NOW, 0)
    engine.begin_flatten(3)
    engine.flatten_step(R, True, NOW, 0)
    assert adapter.cancels[-1][1] == "V2"
    assert len(adapter.submits) == 2  # nothing sold while the strategy's sell may still fill
    engine.flatten_step(R, True, NOW, 2 * SEC)
    assert len(adapter.cancels) == 1  # one cancel per order, not one per pass
    # the strategy's sell fills 3 before the cancel lands: the flatten sells what is left
    engine.on_adapter(
        [Fill("V2", 1, 3, 70_000, 1, NOW), OrderClosed("V2", "canceled", 0, "flatten")], NOW, 0
    )
    engine.flatten_step(R, True, NOW, 3 * SEC)
    sell = adapter.submits[-1][1]
    assert (sell.side, sell.qty, sell.order_type, sell.price) == (
        Side.SELL,
        7,
        OrderType.MARKET,  # no daily limits known for the symbol
        0,
    )


def test_a_rejected_flatten_order_is_retried_at_most_once_a_second(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    bought(engine, adapter, "b1", 10, "V1")
    engine.begin_flatten(4)
    engine.flatten_step(R, True, NOW, 0)
    coid = adapter.submits[-1][1].client_order_id
    engine.journal.record_rejected(coid, "BROKER_REJECT", "test", NOW)
    engine.flatten_step(R, True, NOW, SEC // 2)
    assert len(adapter.submits) == 2
    engine.flatten_step(R, True, NOW, 2 * SEC)
    assert len(adapter.submits) == 3 and adapter.submits[-1][1].qty == 10


def test_strategy_orders_are_refused_while_flattening(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    engine.begin_flatten(5)
    engine.on_order(order("r1", side=Side.SELL, reduce_only=True), R, True, NOW, 0)
    assert adapter.submits == []
    assert isinstance(out[-1], IntentDenied) and out[-1].code == Reason.REDUCE_ONLY
    engine.end_flatten()
    engine.on_order(order("r2", side=Side.SELL, reduce_only=True), R, True, NOW, 0)
    assert len(adapter.submits) == 1


def test_a_strategy_cannot_cancel_the_flattens_orders(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    bought(engine, adapter, "b1", 10, "V1")
    engine.begin_flatten(6)
    engine.flatten_step(R, True, NOW, 0)
    ref, sell = adapter.submits[-1]
    engine.on_adapter([SubmitAccepted(ref, "V9", NOW)], NOW, 0)
    engine.on_order(
        CancelOrder(client_order_id=sell.client_order_id, strategy="s"), R, True, NOW, 0
    )
    assert adapter.cancels == [] and engine.counters["flatten_cancels_refused"] == 1
    engine.end_flatten()
    engine.on_order(
        CancelOrder(client_order_id=sell.client_order_id, strategy="s"), R, True, NOW, 0
    )
    assert adapter.cancels[-1][1] == "V9"
