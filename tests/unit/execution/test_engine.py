from __future__ import annotations

from pathlib import Path

import pytest

from protocol.codes import Reason
from protocol.enums import OrderStatus, Side, TradingState
from protocol.messages import (
    IntentDenied,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from services.execution.adapters.base import (
    BrokerFill,
    BrokerOrder,
    BrokerUnavailable,
    Fill,
    OrderClosed,
    SubmitAccepted,
    SubmitRejected,
)
from services.execution.orders import IllegalTransition
from tests.unit.execution.fakes import NOW, make, order

ACTIVE = TradingState.ACTIVE


def submit(engine, o, state=ACTIVE, fresh=True, now=NOW):  # type: ignore[no-untyped-def]
    engine.on_order(o, state, fresh, now, 1_000)


def test_submit_then_journaled_before_send_and_submitted_event(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    submit(engine, order())
    assert adapter.journal_status_at_send == [OrderStatus.PENDING.value]
    assert engine.journal.order(out[0].client_order_id)["status"] == OrderStatus.SENT.value
    assert [type(e) for e in out] == [OrderSubmitted]
    assert out[0].seq == 1 and out[0].trace.sent == 1_000


def test_submit_same_client_order_id_twice_then_second_dropped(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    submit(engine, order())
    submit(engine, order())
    assert len(adapter.submits) == 1
    assert engine.counters["duplicate_orders"] == 1
    assert len(out) == 1


@pytest.mark.parametrize(
    ("state", "fresh", "ready", "intent_ns", "reduce_only", "code"),
    [
        (ACTIVE, True, True, NOW - 3_000_000_000, False, Reason.STALE_INTENT),
        (ACTIVE, True, False, NOW, False, Reason.NOT_READY),
        (TradingState.HALTED, True, True, NOW, False, Reason.HALTED),
        (ACTIVE, False, True, NOW, False, Reason.FAILSAFE),
        (TradingState.REDUCING, True, True, NOW, False, Reason.REDUCE_ONLY),
    ],
)
def test_submit_when_refused_then_denied_and_journaled(  # type: ignore[no-untyped-def]
    tmp_path: Path, state, fresh, ready, intent_ns, reduce_only, code
) -> None:
    engine, adapter, out = make(tmp_path, ready=ready)
    o = order(intent_ns=intent_ns, reduce_only=reduce_only)
    submit(engine, o, state=state, fresh=fresh)
    assert adapter.submits == []
    assert len(out) == 1 and isinstance(out[0], IntentDenied)
    assert out[0].code == code and out[0].seq == 1
    row = engine.journal.order(o.client_order_id)
    assert row["status"] == OrderStatus.DENIED.value and row["code"] == code


def test_submit_reduce_only_when_reducing_then_sent(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    submit(engine, order(reduce_only=True), state=TradingState.REDUCING)
    assert len(adapter.submits) == 1


def test_denied_by_risk_then_journaled_and_republished_with_seq(tmp_path: Path) -> None:
    engine, _, out = make(tmp_path)
    d = IntentDenied(
        intent_id="i9",
        strategy="s",
        symbol="005930",
        side=Side.BUY,
        qty=1,
        price=100,
        code=Reason.HALTED,
        reason="x",
        ts_ns=NOW,
    )
    engine.on_order(d, ACTIVE, True, NOW, 0)
    assert isinstance(out[0], IntentDenied) and out[0].seq == 1


def test_accept_then_fills_then_filled_and_replayed_fill_ignored(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    o = order(qty=10)
    submit(engine, o)
    ref = adapter.submits[0][0]
    engine.on_adapter([SubmitAccepted(ref, "V1", NOW)], NOW, 2_000)
    engine.on_adapter([Fill("V1", 1, 4, 70_000, 6, NOW + 5)], NOW, 0)
    engine.on_adapter([Fill("V1", 1, 4, 70_000, 6, NOW + 5)], NOW, 0)  # replayed
    engine.on_adapter([Fill("V1", 2, 6, 70_000, 0, NOW + 6)], NOW, 0)
    kinds = [type(e) for e in out]
    assert kinds == [OrderSubmitted, OrderAccepted, OrderFilled, OrderFilled]
    assert out[1].trace.acked == 2_000
    assert out[2].exch_ns == NOW + 5 and out[2].fill_id == "V1-1" and out[2].leaves_qty == 6
    row = engine.journal.order(o.client_order_id)
    assert row["status"] == OrderStatus.FILLED.value and row["filled_qty"] == 10
    assert [e.seq for e in out] == [1, 2, 3, 4]


def test_broker_reject_then_rejected_with_venue_code(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    submit(engine, order())
    engine.on_adapter([SubmitRejected(adapter.submits[0][0], "PRICE", "off tick")], NOW, 0)
    assert isinstance(out[-1], OrderRejected)
    assert out[-1].code == Reason.BROKER_REJECT and "PRICE: off tick" in out[-1].reason


def test_notice_before_ack_then_buffered_and_applied_after(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    o = order(qty=10)
    submit(engine, o)
    engine.on_adapter([Fill("V7", 1, 10, 70_000, 0, NOW)], NOW, 0)
    assert [type(e) for e in out] == [OrderSubmitted]
    engine.on_adapter([SubmitAccepted(adapter.submits[0][0], "V7", NOW)], NOW, 0)
    assert [type(e) for e in out] == [OrderSubmitted, OrderAccepted, OrderFilled]
    assert engine.journal.order(o.client_order_id)["status"] == OrderStatus.FILLED.value


def test_no_answer_then_stays_sent_and_reconcile_resolves_without_resend(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    o = order()
    submit(engine, o)
    adapter.down = True
    engine.check_timeouts(10.0, NOW)
    assert engine.reconcile_due  # the service runs it, backing off while the broker is down
    with pytest.raises(BrokerUnavailable):
        engine.reconcile(NOW)
    assert engine.journal.order(o.client_order_id)["status"] == OrderStatus.SENT.value
    adapter.down = False
    adapter.orders = [BrokerOrder("V3", "005930", Side.BUY, 10, 70_000, 10, "filled", NOW)]
    adapter.fills = [BrokerFill("V3", 1, "005930", Side.BUY, 10, 70_000, NOW)]
    engine.reconcile(NOW)
    assert len(adapter.submits) == 1
    row = engine.journal.order(o.client_order_id)
    assert row["broker_order_no"] == "V3" and row["status"] == OrderStatus.FILLED.value
    assert [type(e) for e in out] == [OrderSubmitted, OrderAccepted, OrderFilled]


def test_reconcile_sent_order_unknown_to_broker_then_rejected(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    o = order()
    submit(engine, o)
    engine.inflight.clear()  # as after a restart: nothing in flight any more
    engine.reconcile(NOW)
    assert isinstance(out[-1], OrderRejected) and "not found" in out[-1].reason
    assert len(adapter.submits) == 1


def test_reconcile_unknown_broker_order_then_adopted(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    adapter.orders = [BrokerOrder("V9", "000660", Side.SELL, 3, 100_000, 0, "open", NOW)]
    engine.reconcile(NOW)
    row = engine.journal.order("ADOPT-V9")
    assert row["strategy"] == "unknown" and row["status"] == OrderStatus.ACCEPTED.value
    assert engine.open_orders() == 1


def test_halt_then_cancels_every_open_order_and_counts_confirmations(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    submit(engine, order("a"))
    submit(engine, order("b"))
    submit(engine, order("c"))
    refs = [r for r, _ in adapter.submits]
    engine.on_adapter(
        [SubmitAccepted(refs[0], "V1", NOW), SubmitAccepted(refs[1], "V2", NOW)], NOW, 0
    )
    sent = engine.cancel_all(epoch=1)
    assert sent == 3 and sorted(n for _, n in adapter.cancels) == ["V1", "V2"]
    engine.on_adapter([SubmitAccepted(refs[2], "V3", NOW)], NOW, 0)  # cancel once numbered
    assert sorted(n for _, n in adapter.cancels) == ["V1", "V2", "V3"]
    engine.on_adapter(
        [
            OrderClosed("V1", "canceled", 10, "canceled"),
            OrderClosed("V2", "expired", 10, "expired"),
        ],
        NOW,
        0,
    )
    assert engine.counters["halt_cancels_sent"] == 3
    assert engine.counters["halt_cancels_confirmed"] == 2
    assert isinstance(out[-1], OrderCanceled) and out[-1].expired
    engine.cancel_all(epoch=2)
    assert engine.counters["halt_cancels_confirmed"] == 0
    assert engine.counters["halt_cancels_sent"] == 1


def test_illegal_transition_then_raises(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    o = order(qty=1)
    submit(engine, o)
    engine.on_adapter([SubmitAccepted(adapter.submits[0][0], "V1", NOW)], NOW, 0)
    engine.on_adapter([Fill("V1", 1, 1, 70_000, 0, NOW)], NOW, 0)
    with pytest.raises(IllegalTransition):
        engine.journal.record_accepted(o.client_order_id, "V1", NOW, o.trace)


def test_reconcile_pending_row_found_at_broker_then_accepted_not_resent(tmp_path: Path) -> None:
    # a crash after the send but before SENT was journaled leaves the row PENDING
    engine, adapter, out = make(tmp_path)
    o = order()
    engine.journal.record_pending(o, NOW)
    adapter.orders = [BrokerOrder("V5", "005930", Side.BUY, 10, 70_000, 0, "open", NOW)]
    engine.reconcile(NOW)
    row = engine.journal.order(o.client_order_id)
    assert row["status"] == OrderStatus.ACCEPTED.value and row["broker_order_no"] == "V5"
    assert adapter.submits == [] and isinstance(out[-1], OrderAccepted)


def test_periodic_reconcile_while_an_answer_is_awaited_then_no_difference(
    tmp_path: Path,
) -> None:
    engine, adapter, out = make(tmp_path)
    o = order()
    submit(engine, o)  # sent; its ack is still on the way, the broker already lists it
    adapter.orders = [BrokerOrder("V9", "005930", Side.BUY, 10, 70_000, 0, "open", NOW)]
    stats = engine.reconcile(NOW)
    assert stats == {"matched": 0, "adopted": 0, "fills": 0, "closed": 0, "lost": 0}
    assert engine.journal.order(o.client_order_id)["status"] == OrderStatus.SENT.value
    assert not any(isinstance(e, OrderRejected) for e in out)
    engine.on_adapter([SubmitAccepted(1, "V9", NOW)], NOW, 2_000)  # the ack, read afterwards
    assert engine.journal.order(o.client_order_id)["broker_order_no"] == "V9"
    assert [r["client_order_id"] for r in engine.journal.orders()] == [o.client_order_id]


def test_notice_held_for_an_order_reconcile_then_matches_is_applied(tmp_path: Path) -> None:
    engine, adapter, out = make(tmp_path)
    o = order()
    submit(engine, o)
    # the fill notice overtakes the ack, then the ack is lost (the venue died after sending it)
    engine.on_adapter([Fill("V5", 1, 10, 70_000, 0, NOW)], NOW, 2_000)
    adapter.orders = [BrokerOrder("V5", "005930", Side.BUY, 10, 70_000, 10, "filled", NOW)]
    engine.inflight.clear()  # as after the timeout: no answer expected any more
    engine.reconcile(NOW, settle_ns=10**12)  # the broker's fill list does not help here
    row = engine.journal.order(o.client_order_id)
    assert (row["broker_order_no"], row["status"]) == ("V5", OrderStatus.FILLED.value)
    assert sum(isinstance(e, OrderFilled) for e in out) == 1


def test_submit_when_broker_not_connected_then_rejected_not_unknown(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    adapter.disconnected = True
    o = order()
    submit(engine, o)
    row = engine.journal.order(o.client_order_id)
    assert row["status"] == OrderStatus.REJECTED.value and row["code"] == Reason.BROKER_UNAVAILABLE
    assert not engine.inflight


def test_cancel_when_broker_not_connected_then_retried_until_it_goes_out(tmp_path: Path) -> None:
    engine, adapter, _ = make(tmp_path)
    o = order()
    submit(engine, o)
    engine.on_adapter([SubmitAccepted(1, "V1", NOW)], NOW, 2_000)
    adapter.disconnected = True
    assert engine.cancel_all(epoch=2) == 1
    assert adapter.cancels == []
    adapter.disconnected = False
    engine.retry_cancels()
    assert [no for _, no in adapter.cancels] == ["V1"] and not engine.cancel_retry


def test_reconcile_unknown_order_does_not_take_a_later_identical_broker_order(
    tmp_path: Path,
) -> None:
    engine, adapter, _ = make(tmp_path)
    o = order()
    submit(engine, o, now=NOW)
    engine.inflight.clear()  # timed out: outcome unknown
    later = NOW + 10_000_000_000  # an identical order the broker got 10 s later is not ours
    adapter.orders = [BrokerOrder("V7", "005930", Side.BUY, 10, 70_000, 0, "open", later)]
    stats = engine.reconcile(later)
    assert stats["matched"] == 0 and stats["adopted"] == 1 and stats["lost"] == 1
    assert engine.journal.order(o.client_order_id)["status"] == OrderStatus.REJECTED.value
