"""The supervisor process: trading state, control broadcast, heartbeats, qts-ctl answers.

It is not supervisord: supervisord starts and restarts processes; this service decides whether
trading may happen. State changes are persisted (atomic write + fsync) before they are
broadcast, so a restarted supervisor comes back in the state everyone was last told.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import zmq

from protocol import codec
from protocol.codes import CtlCode
from protocol.enums import TradingState
from protocol.messages import (
    CtlReply,
    ExecEvent,
    Heartbeat,
    OrderRejected,
    PortfolioSnapshot,
    TradingStateUpdate,
)
from services.runtime.log import logger
from services.runtime.service import DEFERRED, CommandError, Deferred, Service
from services.runtime.statefile import PersistedState, StateStore
from services.supervisor.engine import HeartbeatTable, PendingChange
from services.supervisor.guardrails import Guardrails
from services.supervisor.states import InvalidTransition, next_state


class SupervisorService(Service):
    name = "supervisor"
    listens_to_control = False
    sends_heartbeats = False

    def setup(self) -> None:
        cfg = self.settings.supervisor
        self.store = StateStore(
            self.settings.runtime.state_dir / "trading_state.json", TradingState(cfg.initial_state)
        )
        self.current, error = self.store.load()
        if error:
            logger.critical("trading state file unreadable ({}); starting HALTED", error)
            self.store.save(self.current)
        logger.info(
            "trading state {} (epoch {}, by {}: {})",
            self.current.state.value,
            self.current.epoch,
            self.current.by,
            self.current.reason,
        )
        self.table = HeartbeatTable(cfg.acknowledgers, cfg.heartbeat_timeout_ms / 1000.0)
        self.pending: list[PendingChange] = []
        self.pub = self.bind(zmq.PUB, "control")
        self.hb = self.bind(zmq.PULL, "heartbeat")
        self.on(self.hb, "heartbeat", self.on_heartbeat)
        self.every(cfg.control_interval_ms / 1000.0, self.broadcast)
        self.every(0.01, self.check_pending)
        for trigger in ("halt", "reduce", "resume"):
            self.command(trigger, functools.partial(self.transition, trigger))
        self.command("status", self.cmd_status)
        # guardrails: limits that move the state without an operator (docs/operations.md)
        self.guardrails = Guardrails(self.settings.guardrails, cfg.critical)
        self.portfolio_sub = self.connect(zmq.SUB, "portfolio")
        self.on(self.portfolio_sub, "portfolio", self.on_portfolio)
        self.exec_sub = self.connect(zmq.SUB, "exec")
        self.on(self.exec_sub, "exec", self.on_exec)
        self.every(self.settings.guardrails.evaluate_interval_ms / 1000.0, self.check_guardrails)
        self.trading_state = self.current.state
        self.epoch = self.current.epoch
        self.broadcast()

    # ------------------------------------------------------------------------------ control
    def broadcast(self) -> None:
        s = self.current
        msg = TradingStateUpdate(
            state=s.state,
            epoch=s.epoch,
            reason=s.reason,
            by=s.by,
            changed_ns=s.changed_ns,
            ts_ns=time.time_ns(),
        )
        self.pub.send(codec.encode(msg))

    def on_heartbeat(self, hb: Heartbeat) -> None:
        now = time.monotonic()
        error = self.table.record(hb, now)
        if error:
            self.count("refused_heartbeats")
            logger.error("{} pid {}: {}", hb.service, hb.pid, error)
            return
        self.guardrails.on_heartbeat(hb, now, time.time_ns())
        if self.pending:
            self.check_pending()

    # ------------------------------------------------------------------------------ guardrails
    def on_portfolio(self, snap: PortfolioSnapshot) -> None:
        self.count("portfolio_snapshots")
        self.guardrails.on_portfolio(snap, time.time_ns())

    def on_exec(self, ev: ExecEvent) -> None:
        if isinstance(ev, OrderRejected):
            self.guardrails.on_reject(ev, time.monotonic())

    def check_guardrails(self) -> None:
        for f in self.guardrails.evaluate(self.current.state, time.monotonic(), time.time_ns()):
            state = self.current.state
            if f.action is None:
                self.count(f"guardrail.{f.name}")
                logger.warning("guardrail {} (warn only): {}", f.name, f.text)
                continue
            # never lift a HALT, REDUCING only from ACTIVE: only a move to a stricter state
            if f.action is state or state is TradingState.HALTED:
                continue
            self.count(f"guardrail.{f.name}")
            logger.error("guardrail {} fired -> {}: {}", f.name, f.action.value, f.text)
            self.change(f.action, f.text, f"guardrail:{f.name}")

    def transition(self, trigger: str, args: dict[str, Any]) -> Deferred:
        reason = str(args.get("reason") or "").strip()
        if not reason and trigger != "resume":
            raise CommandError(CtlCode.BAD_REQUEST, f"{trigger} needs a reason")
        by = str(args.get("by") or "operator")
        try:
            state = next_state(self.current.state, trigger)
        except InvalidTransition as exc:
            raise CommandError(CtlCode.INVALID_TRANSITION, str(exc)) from None
        self.change(state, reason or trigger, by)
        now = time.monotonic()
        wait = self.settings.supervisor.halt_ack_timeout_ms / 1000.0
        change = PendingChange(
            epoch=self.current.epoch,
            started=now,
            deadline=now + wait,
            waiting_for=tuple(self.table.acknowledgers),
        )
        change.reply_to.append((args["_identity"], args["_request_id"]))
        self.pending.append(change)
        self.check_pending()
        return DEFERRED

    def change(self, state: TradingState, reason: str, by: str) -> None:
        previous = self.current
        self.current = PersistedState(
            state=state, epoch=previous.epoch + 1, reason=reason, by=by, changed_ns=time.time_ns()
        )
        self.store.save(self.current)  # persisted before anyone is told
        self.trading_state, self.epoch = state, self.current.epoch
        self.broadcast()
        logger.warning(
            "trading state {} -> {} (epoch {}) by {}: {}",
            previous.state.value,
            state.value,
            self.current.epoch,
            by,
            reason,
        )

    def check_pending(self) -> None:
        if not self.pending:
            return
        now = time.monotonic()
        still: list[PendingChange] = []
        for change in self.pending:
            done = self.table.update_pending(change, now)
            if done or now >= change.deadline:
                self.answer(change, now)
            else:
                still.append(change)
        self.pending = still

    def answer(self, change: PendingChange, now: float) -> None:
        acks = self.table.ack_report(change, now)
        counters = self.table.counters("execution")
        data = {
            "state": self.current.state.value,
            "epoch": change.epoch,
            "acks": acks,
            "execution": {
                k: counters.get(k, 0)
                for k in ("halt_cancels_sent", "halt_cancels_confirmed", "open_orders")
            },
        }
        missing = [n for n, a in acks.items() if not a["acked"]]
        done = not missing  # a down acknowledger counts as not acknowledged
        for identity, request_id in change.reply_to:
            if done:
                rep = CtlReply(request_id=request_id, ok=True, code=CtlCode.OK, data=data)
            else:
                rep = CtlReply(
                    request_id=request_id,
                    ok=False,
                    code=CtlCode.NOT_ACKNOWLEDGED,
                    reason="not acknowledged by "
                    + ", ".join(
                        f"{n} ({'alive' if acks[n]['alive'] else 'down'})" for n in missing
                    ),
                    data=data,
                )
            self.reply(identity, rep)
        if not done:
            logger.error("epoch {} not acknowledged by {}", change.epoch, ", ".join(missing))

    def cmd_status(self, args: dict[str, Any]) -> dict[str, Any]:
        s = self.current
        services = self.table.status(time.monotonic(), time.time_ns())
        services["supervisor"] = {
            "alive": True,
            "status": "ready",
            "detail": "",
            "pid": os.getpid(),
            "age_ms": 0.0,
            "epoch_ack": s.epoch,
            "started_ns": self.started_ns,
            "counters": dict(self.counters),
        }
        return {
            "state": s.state.value,
            "epoch": s.epoch,
            "reason": s.reason,
            "by": s.by,
            "changed_ns": s.changed_ns,
            "services": services,
            "guardrails": self.guardrails.status(),
        }
