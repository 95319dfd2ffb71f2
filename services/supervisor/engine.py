"""Heartbeat table and acknowledgement bookkeeping (pure: the clock is passed in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.messages import PROTOCOL_VERSION, Heartbeat


@dataclass
class ServiceView:
    name: str
    last: Heartbeat | None = None
    received: float = 0.0  # monotonic seconds
    refused: str = ""


@dataclass
class PendingChange:
    """A transition waiting for every acknowledger to report epoch_ack >= epoch."""

    epoch: int
    started: float
    deadline: float
    waiting_for: tuple[str, ...]
    acked_at: dict[str, float] = field(default_factory=dict)
    reply_to: list[tuple[bytes, str]] = field(default_factory=list)  # (identity, request id)


class HeartbeatTable:
    def __init__(self, acknowledgers: list[str], timeout_s: float) -> None:
        self.acknowledgers = list(acknowledgers)
        self.timeout_s = timeout_s
        self.services: dict[str, ServiceView] = {n: ServiceView(n) for n in acknowledgers}

    def record(self, hb: Heartbeat, now: float) -> str | None:
        """Store a heartbeat; returns an error text if the service must be refused."""
        view = self.services.setdefault(hb.service, ServiceView(hb.service))
        if hb.protocol != PROTOCOL_VERSION:
            view.refused = f"refused: protocol {hb.protocol}, expected {PROTOCOL_VERSION}"
            return view.refused
        view.refused = ""
        view.last = hb
        view.received = now
        return None

    def alive(self, name: str, now: float) -> bool:
        view = self.services.get(name)
        return bool(
            view and view.last and not view.refused and now - view.received <= self.timeout_s
        )

    def epoch_ack(self, name: str) -> int:
        view = self.services.get(name)
        return view.last.epoch_ack if view and view.last else 0

    def counters(self, name: str) -> dict[str, int]:
        view = self.services.get(name)
        return dict(view.last.counters) if view and view.last else {}

    def update_pending(self, change: PendingChange, now: float) -> bool:
        """Record new acknowledgements; True once every acknowledger that is alive has
        acknowledged (a down service cannot: waiting for it would only delay the answer)."""
        for name in change.waiting_for:
            if name not in change.acked_at and self.epoch_ack(name) >= change.epoch:
                change.acked_at[name] = now
        return all(n in change.acked_at or not self.alive(n, now) for n in change.waiting_for)

    @staticmethod
    def all_acked(change: PendingChange) -> bool:
        return len(change.acked_at) == len(change.waiting_for)

    def ack_report(self, change: PendingChange, now: float) -> dict[str, Any]:
        return {
            name: {
                "acked": name in change.acked_at,
                "ms": round((change.acked_at[name] - change.started) * 1000, 3)
                if name in change.acked_at
                else None,
                "alive": self.alive(name, now),
            }
            for name in change.waiting_for
        }

    def status(self, now: float, wall_ns: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, view in sorted(self.services.items()):
            hb = view.last
            out[name] = {
                "alive": self.alive(name, now),
                "status": view.refused or (hb.status if hb else "never heard"),
                "detail": hb.detail if hb else "",
                "pid": hb.pid if hb else None,
                "age_ms": round((now - view.received) * 1000, 1) if hb else None,
                "epoch_ack": hb.epoch_ack if hb else 0,
                "started_ns": hb.started_ns if hb else None,
                "counters": dict(hb.counters) if hb else {},
            }
        return out
