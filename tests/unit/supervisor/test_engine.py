from __future__ import annotations

from protocol.messages import PROTOCOL_VERSION, Heartbeat
from services.supervisor.engine import HeartbeatTable, PendingChange


def hb(
    service: str,
    epoch_ack: int = 0,
    protocol: int = PROTOCOL_VERSION,
    counters: dict[str, int] | None = None,
) -> Heartbeat:
    return Heartbeat(
        service=service,
        pid=42,
        protocol=protocol,
        seq=1,
        started_ns=1,
        ts_ns=2,
        epoch_ack=epoch_ack,
        status="ready",
        counters=counters or {},
    )


def test_heartbeat_within_timeout_then_alive_and_after_then_dead() -> None:
    table = HeartbeatTable(["risk"], timeout_s=1.0)
    table.record(hb("risk"), now=10.0)
    assert table.alive("risk", 11.0)
    assert not table.alive("risk", 11.001)


def test_never_heard_acknowledger_then_listed_not_alive() -> None:
    table = HeartbeatTable(["risk", "execution"], timeout_s=1.0)
    status = table.status(now=5.0, wall_ns=0)
    assert status["execution"]["alive"] is False
    assert status["execution"]["status"] == "never heard"


def test_wrong_protocol_then_refused_and_not_alive() -> None:
    table = HeartbeatTable(["risk"], timeout_s=1.0)
    error = table.record(hb("risk", protocol=PROTOCOL_VERSION + 1), now=1.0)
    assert error == f"refused: protocol {PROTOCOL_VERSION + 1}, expected {PROTOCOL_VERSION}"
    assert not table.alive("risk", 1.0)
    assert table.status(1.0, 0)["risk"]["status"] == error


def test_pending_change_when_all_ack_then_done_with_delays() -> None:
    table = HeartbeatTable(["risk", "execution"], timeout_s=1.0)
    change = PendingChange(
        epoch=3, started=100.0, deadline=101.0, waiting_for=("risk", "execution")
    )
    table.record(hb("execution", epoch_ack=2), now=100.0)
    table.record(hb("risk", epoch_ack=3), now=100.010)
    assert not table.update_pending(change, now=100.010)
    table.record(hb("execution", epoch_ack=2), now=100.020)
    assert not table.update_pending(change, now=100.020)
    table.record(hb("execution", epoch_ack=4), now=100.050)
    assert table.update_pending(change, now=100.050)
    report = table.ack_report(change, now=100.050)
    assert report["risk"] == {"acked": True, "ms": 10.0, "alive": True}
    assert report["execution"]["acked"] is True
    assert report["execution"]["ms"] == 50.0


def test_pending_change_when_service_silent_then_reported_not_acked() -> None:
    table = HeartbeatTable(["risk", "strategy"], timeout_s=1.0)
    change = PendingChange(epoch=2, started=0.0, deadline=1.0, waiting_for=("risk", "strategy"))
    table.record(hb("risk", epoch_ack=2), now=0.1)
    assert table.update_pending(change, now=1.0)  # nobody alive left to wait for
    assert not table.all_acked(change)
    report = table.ack_report(change, now=1.0)
    assert report["strategy"] == {"acked": False, "ms": None, "alive": False}


def test_counters_from_latest_heartbeat() -> None:
    table = HeartbeatTable(["execution"], timeout_s=1.0)
    table.record(hb("execution", counters={"halt_cancels_sent": 2}), now=0.0)
    table.record(hb("execution", counters={"halt_cancels_sent": 3}), now=0.1)
    assert table.counters("execution") == {"halt_cancels_sent": 3}


def test_pending_change_when_only_dead_service_missing_then_done_early_but_not_all_acked() -> None:
    table = HeartbeatTable(["risk", "strategy"], timeout_s=1.0)
    table.record(hb("strategy"), now=0.0)  # last heard long ago: down by now
    change = PendingChange(epoch=2, started=5.0, deadline=6.0, waiting_for=("risk", "strategy"))
    table.record(hb("risk", epoch_ack=2), now=5.01)
    assert table.update_pending(change, now=5.01)
    assert not table.all_acked(change)
    assert table.ack_report(change, now=5.01)["strategy"]["alive"] is False
