"""The supervisor process: trading state, control broadcast, heartbeats, qts-ctl answers.

It is not supervisord: supervisord starts and restarts processes; this service decides whether
trading may happen. State changes are persisted (atomic write + fsync) before they are
broadcast, so a restarted supervisor comes back in the state everyone was last told.
"""

from __future__ import annotations

import functools
import json
import os
import socket
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
from services.runtime.statefile import PersistedState, StateStore, atomic_write
from services.supervisor.dashboard import start_front
from services.supervisor.engine import HeartbeatTable, PendingChange
from services.supervisor.guardrails import Guardrails
from services.supervisor.metrics import count_exec
from services.supervisor.notifier import Notifier
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
        self.every(0.1, self.check_flatten)
        self.flatten_deadline = 0.0  # monotonic; set while a flatten is under way
        for trigger in ("halt", "reduce", "resume", "flatten"):
            self.command(trigger, functools.partial(self.transition, trigger))
        self.command("status", self.cmd_status)
        # guardrails: limits that move the state without an operator (docs/operations.md)
        self.guardrails = Guardrails(self.settings.guardrails, cfg.critical)
        self.portfolio_sub = self.connect(zmq.SUB, "portfolio")
        self.on(self.portfolio_sub, "portfolio", self.on_portfolio)
        self.exec_sub = self.connect(zmq.SUB, "exec")
        self.on(self.exec_sub, "exec", self.on_exec)
        self.every(self.settings.guardrails.evaluate_interval_ms / 1000.0, self.check_guardrails)
        self.day_file = self.settings.runtime.state_dir / "guardrails.json"
        self.restore_day_state()
        self.day_saved = time.monotonic()
        self.every(0.25, self.upkeep)
        # alerts: every state change and firing, POSTed from a thread (docs/operations.md)
        self.notifier = Notifier(
            self.settings.notifier,
            {"system": "qts", "env": self.settings.runtime.env, "host": socket.gethostname()},
        )
        self.notifier.notify(
            "supervisor_started",
            pid=os.getpid(),
            state=self.current.state.value,
            epoch=self.current.epoch,
            by=self.current.by,
            reason=self.current.reason,
            changed_ns=self.current.changed_ns,
        )
        self.trading_state = self.current.state
        self.epoch = self.current.epoch
        self.broadcast()
        # /metrics and the dashboard, on threads of their own (docs/metrics.md)
        self.front = start_front(self)

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
            flatten=s.flatten,
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
        count_exec(self.counters, self.histograms, ev)  # tallies and latency for /metrics
        if isinstance(ev, OrderRejected):
            self.guardrails.on_reject(ev, time.monotonic())

    def check_guardrails(self) -> None:
        for f in self.guardrails.evaluate(self.current.state, time.monotonic(), time.time_ns()):
            state = self.current.state
            if f.action is None:
                self.count(f"guardrail.{f.name}")
                logger.warning("guardrail {} (warn only): {}", f.name, f.text)
                self.notify_firing(f.name, "warn", f.text, f.figures, f.at_ns)
                continue
            # never lift a HALT, REDUCING only from ACTIVE: only a move to a stricter state
            if f.action is state or state is TradingState.HALTED:
                continue
            self.count(f"guardrail.{f.name}")
            logger.error("guardrail {} fired -> {}: {}", f.name, f.action.value, f.text)
            self.notify_firing(f.name, f.action.value, f.text, f.figures, f.at_ns)
            self.change(f.action, f.text, f"guardrail:{f.name}")

    def notify_firing(
        self, name: str, action: str, text: str, figures: dict[str, Any], at_ns: int
    ) -> None:
        self.notifier.notify(
            "guardrail",
            name=name,
            action=action,
            text=text,
            figures=figures,
            at_ns=at_ns,
            state=self.current.state.value,
            epoch=self.current.epoch,
        )

    def upkeep(self) -> None:
        """Notifier counters into the status; the guardrails' day state to its file when it
        changed, at most every day_state_save_interval_ms (a peak moves with every snapshot)."""
        self.counters.update(self.notifier.counters())
        interval = self.settings.guardrails.day_state_save_interval_ms / 1000.0
        now = time.monotonic()
        if self.guardrails.dirty and now - self.day_saved >= interval:
            self.save_day_state()

    def save_day_state(self) -> None:
        now = time.monotonic()
        data = self.guardrails.day_state(now, time.time_ns())
        try:
            self.day_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.day_file, json.dumps(data, indent=1).encode())
        except OSError as exc:
            self.count("day_state_save_errors")
            logger.error("cannot save the guardrails' day state to {}: {}", self.day_file, exc)
        self.day_saved = now

    def restore_day_state(self) -> None:
        try:
            data = json.loads(self.day_file.read_bytes())
            what = self.guardrails.restore(data, time.monotonic(), time.time_ns())
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # the trading state is what keeps us safe; a lost peak only delays a drawdown
            logger.error(
                "guardrails' day state {} unusable, starting afresh: {}", self.day_file, exc
            )
            return
        logger.info("guardrails' day state restored: {}", what)

    def teardown(self) -> None:
        self.save_day_state()
        self.notifier.close()
        if self.front is not None:
            self.front.close()

    def transition(self, trigger: str, args: dict[str, Any]) -> Deferred:
        reason = str(args.get("reason") or "").strip()
        if not reason and trigger != "resume":
            raise CommandError(CtlCode.BAD_REQUEST, f"{trigger} needs a reason")
        by = str(args.get("by") or "operator")
        try:
            state = next_state(self.current.state, trigger)
        except InvalidTransition as exc:
            raise CommandError(CtlCode.INVALID_TRANSITION, str(exc)) from None
        self.change(state, reason or trigger, by, flatten=trigger == "flatten")
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

    def change(self, state: TradingState, reason: str, by: str, flatten: bool = False) -> None:
        previous = self.current
        self.current = PersistedState(
            state=state,
            epoch=previous.epoch + 1,
            reason=reason,
            by=by,
            changed_ns=time.time_ns(),
            flatten=flatten,
        )
        self.flatten_deadline = 0.0
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
        self.notifier.notify(
            "state_change",
            state=state.value,
            previous=previous.state.value,
            epoch=self.current.epoch,
            by=by,
            reason=reason,
            changed_ns=self.current.changed_ns,
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

    # ------------------------------------------------------------------------------ flatten
    def check_flatten(self) -> None:
        """REDUCING for `halt --flatten`: HALTED once execution reports, for this epoch, no
        position and no open order left; HALTED anyway at the deadline, saying what is left.
        Runs again after a supervisor restart (the flag is persisted with the state)."""
        s = self.current
        if not s.flatten or s.state is not TradingState.REDUCING:
            return
        now = time.monotonic()
        if not self.flatten_deadline:
            self.flatten_deadline = now + self.settings.supervisor.flatten_timeout_s
        c = self.table.counters("execution")
        mine = c.get("flatten_epoch") == s.epoch and self.table.alive("execution", now)
        left = (c.get("flatten_positions", -1), c.get("flatten_shares", -1), c.get("open_orders"))
        if mine and left == (0, 0, 0):
            self.change(TradingState.HALTED, f"flatten complete: {s.reason}", s.by)
        elif now >= self.flatten_deadline:
            what = (
                f"{left[0]} positions ({left[1]} shares), {left[2]} open orders left"
                if mine
                else "execution never reported the flatten"
            )
            logger.error("flatten timed out: {}", what)
            self.change(TradingState.HALTED, f"flatten timed out ({what}): {s.reason}", s.by)

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
            "flatten": s.flatten,
            "services": services,
            "guardrails": self.guardrails.status(),
        }
