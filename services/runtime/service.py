"""The loop every service runs: a zmq Poller, timers, signals, heartbeats, control, fail-safe.

A service subclasses Service, opens its sockets in setup() with bind()/connect() and
on(socket, handler), adds timers with every(), and answers qts-ctl commands registered with
command(). run() owns the loop and the shutdown path: SIGTERM/SIGINT only set a flag, and the
loop then leaves the same way a `stop` command does.
"""

from __future__ import annotations

import gc
import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from protocol import codec
from protocol.codes import CtlCode
from protocol.endpoints import ctl_name, endpoint
from protocol.enums import TradingState
from protocol.messages import (
    PROTOCOL_VERSION,
    CtlReply,
    CtlRequest,
    Heartbeat,
    TradingStateUpdate,
)
from services.runtime import curve, log
from services.runtime.histogram import LatencyHistogram
from services.runtime.log import logger
from services.runtime.settings import ConfigError, Settings, load_settings

Handler = Callable[[Any], None]
CommandHandler = Callable[[dict[str, Any]], Any]


class CommandError(Exception):
    """Raised by a command handler to answer ok=False with a code and reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Deferred:
    """Returned by a command handler that answers later (e.g. halt waits for acknowledgements).
    The service calls reply(identity, CtlReply) when ready."""


DEFERRED = Deferred()


class _Timer:
    __slots__ = ("due", "fn", "interval")

    def __init__(self, interval: float, fn: Callable[[], None]) -> None:
        self.interval = interval
        self.due = time.monotonic() + interval
        self.fn = fn


class Service:
    """Base class of every QTS process. Subclasses set `name` and override setup()."""

    name = "service"
    listens_to_control = True
    sends_heartbeats = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx: zmq.Context[Any] = zmq.Context.instance()
        self.poller = zmq.Poller()
        self._handlers: dict[zmq.Socket[Any], tuple[str, Callable[[Any], None]]] = {}
        self._timers: list[_Timer] = []
        self._routers: set[zmq.Socket[Any]] = set()
        self._commands: dict[str, CommandHandler] = {}
        self._stop_reason: str | None = None
        self._exit_code = 0
        self.counters: dict[str, int] = {}
        # latency histograms sent with every heartbeat (services/runtime/histogram.py)
        self.histograms: dict[str, LatencyHistogram] = {}
        self.started_ns = time.time_ns()
        self.status = "starting"
        self.detail = ""
        # control-plane state, as last heard from the supervisor
        self.trading_state = TradingState.HALTED  # nothing trades until the supervisor speaks
        self.epoch = 0
        self.epoch_ack = 0
        self.state_reason = ""
        self.flatten = False  # REDUCING for `halt --flatten` (TradingStateUpdate.flatten)
        self._last_control = 0.0  # monotonic seconds
        self._hb_seq = 0
        self._bad_logged: dict[str, float] = {}
        self.settings.runtime.run_dir.mkdir(parents=True, exist_ok=True)
        self.settings.runtime.state_dir.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------------------- sockets
    def address(self, name: str) -> str:
        rt = self.settings.runtime
        return endpoint(rt.run_dir, name, rt.endpoints)

    def socket(
        self, kind: int, name: str, *, bind: bool, subscribe: bool = True
    ) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, self.settings.runtime.sndhwm)
        sock.setsockopt(zmq.RCVHWM, self.settings.runtime.rcvhwm)
        if kind == zmq.SUB and subscribe:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        addr = self.address(name)
        curve.secure(sock, addr, bind=bind)  # CURVE on tcp:// only (services/runtime/curve.py)
        if bind:
            if addr.startswith("ipc://"):
                # a SIGKILLed predecessor leaves its socket file behind; binding replaces it
                path = addr.removeprefix("ipc://")
                if os.path.exists(path):
                    os.unlink(path)
            sock.bind(addr)
        else:
            sock.connect(addr)
        return sock

    def bind(self, kind: int, name: str) -> zmq.Socket[Any]:
        return self.socket(kind, name, bind=True)

    def connect(self, kind: int, name: str) -> zmq.Socket[Any]:
        return self.socket(kind, name, bind=False)

    def on(self, sock: zmq.Socket[Any], stream: str, handler: Handler) -> None:
        """Decode every frame on `sock` with the stream's typed decoder and pass it to handler.
        A frame that does not decode is counted, logged with the stream and dropped."""
        decode = codec.decoder(stream).decode

        def receive(frame: bytes) -> None:
            try:
                msg = decode(frame)
            except codec.DecodeError as exc:
                self.bad_frame(stream, exc)
                return
            handler(msg)

        self.on_raw(sock, stream, receive)

    def on_router(
        self, sock: zmq.Socket[Any], stream: str, handler: Callable[[bytes, Any], None]
    ) -> None:
        """Like on(), for a ROUTER: handler(identity, message); answer with
        sock.send_multipart([identity, b"", frame])."""
        decode = codec.decoder(stream).decode
        self._routers.add(sock)

        def receive(parts: list[bytes]) -> None:
            try:
                msg = decode(parts[-1])
            except codec.DecodeError as exc:
                self.bad_frame(stream, exc)
                return
            handler(parts[0], msg)

        self._handlers[sock] = (stream, receive)
        self.poller.register(sock, zmq.POLLIN)

    def on_raw(self, sock: zmq.Socket[Any], stream: str, handler: Callable[[bytes], None]) -> None:
        self._handlers[sock] = (stream, handler)
        self.poller.register(sock, zmq.POLLIN)

    def bad_frame(self, stream: str, exc: Exception) -> None:
        key = f"bad_frames.{stream}"
        self.counters[key] = self.counters.get(key, 0) + 1
        now = time.monotonic()
        if now - self._bad_logged.get(stream, 0.0) >= 1.0:  # at most one line a second a stream
            self._bad_logged[stream] = now
            logger.warning(
                "dropped a frame on {} that does not decode ({} so far): {}",
                stream,
                self.counters[key],
                exc,
            )

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    # ----------------------------------------------------------------------------- timers
    def every(self, seconds: float, fn: Callable[[], None]) -> None:
        self._timers.append(_Timer(seconds, fn))

    # ----------------------------------------------------------------------------- commands
    def command(self, name: str, handler: CommandHandler) -> None:
        self._commands[name] = handler

    def reply(self, identity: bytes, rep: CtlReply) -> None:
        self._ctl.send_multipart([identity, b"", codec.encode(rep)])

    def _on_ctl(self) -> None:
        while True:
            try:
                parts = self._ctl.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, payload = parts[0], parts[-1]
            try:
                req = self._ctl_decoder.decode(payload)
            except codec.DecodeError as exc:
                self.bad_frame("ctl", exc)
                self.reply(
                    identity,
                    CtlReply(
                        request_id="",
                        ok=False,
                        code=CtlCode.BAD_REQUEST,
                        reason=f"request does not decode: {exc}",
                    ),
                )
                continue
            self._dispatch(identity, req)

    def _dispatch(self, identity: bytes, req: CtlRequest) -> None:
        handler = self._commands.get(req.command)
        if handler is None:
            self.reply(
                identity,
                CtlReply(
                    request_id=req.request_id,
                    ok=False,
                    code=CtlCode.UNKNOWN_COMMAND,
                    reason=f"{self.name} has no command {req.command!r}",
                ),
            )
            return
        try:
            data = handler({**req.args, "_identity": identity, "_request_id": req.request_id})
        except CommandError as exc:
            rep = CtlReply(request_id=req.request_id, ok=False, code=exc.code, reason=exc.reason)
        except Exception as exc:  # a command must never take the service down
            logger.exception("command {} failed", req.command)
            rep = CtlReply(
                request_id=req.request_id,
                ok=False,
                code=CtlCode.INTERNAL,
                reason=f"{type(exc).__name__}: {exc}",
            )
        else:
            if isinstance(data, Deferred):
                return
            rep = CtlReply(
                request_id=req.request_id, ok=True, code=CtlCode.OK, data=codec.to_builtins(data)
            )
        self.reply(identity, rep)

    def _cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "service": self.name,
            "pid": os.getpid(),
            "status": self.status,
            "detail": self.detail,
            "state": self.trading_state.value,
            "epoch": self.epoch,
            "counters": dict(self.counters),
        }

    # ----------------------------------------------------------------------------- control
    def control_fresh(self) -> bool:
        """Fail-safe: True while the supervisor was heard within runtime.failsafe_ms."""
        limit = self.settings.runtime.failsafe_ms / 1000.0
        return self._last_control > 0 and time.monotonic() - self._last_control <= limit

    def may_open_orders(self) -> bool:
        """New (non-reducing) orders may go out: ACTIVE and the supervisor heard recently."""
        return self.trading_state is TradingState.ACTIVE and self.control_fresh()

    def _on_control(self, msg: TradingStateUpdate) -> None:
        if msg.epoch < self.epoch:
            # Older than what this service applied: an emergency halt by qts-ctl while the
            # supervisor was unreachable, or a supervisor whose state file was reset. Never step
            # back, and do not count it as hearing the supervisor: the fail-safe stays armed
            # until the supervisor speaks an epoch at least as new (`qts-ctl status` shows why).
            self.count("stale_control")
            now = time.monotonic()
            if now - self._bad_logged.get("control-epoch", 0.0) >= 5.0:
                self._bad_logged["control-epoch"] = now
                logger.error(
                    "supervisor epoch {} is behind the applied epoch {}; ignored",
                    msg.epoch,
                    self.epoch,
                )
            return
        self._last_control = time.monotonic()
        self._apply_control(msg)

    def _apply_control(self, msg: TradingStateUpdate) -> None:
        if msg.epoch != self.epoch or msg.state is not self.trading_state:
            previous = self.trading_state
            self.trading_state = msg.state
            self.epoch = msg.epoch
            self.state_reason = msg.reason
            self.flatten = msg.flatten
            if previous is not msg.state:
                logger.info(
                    "trading state {} -> {} (epoch {}, by {}: {})",
                    previous.value,
                    msg.state.value,
                    msg.epoch,
                    msg.by,
                    msg.reason,
                )
            self.on_state_change(previous, msg)
            self.epoch_ack = msg.epoch
            self.heartbeat()  # the acknowledgement: sent after the change was applied
        elif self.epoch_ack != msg.epoch:
            self.epoch_ack = msg.epoch

    def _cmd_emergency_halt(self, args: dict[str, Any]) -> dict[str, Any]:
        """qts-ctl's halt when the supervisor does not answer: apply HALTED at `epoch` here,
        exactly as if the supervisor had said it (execution cancels every open order)."""
        epoch = int(args.get("epoch") or 0)
        if epoch <= 0:
            raise CommandError(CtlCode.BAD_REQUEST, "emergency_halt needs a positive epoch")
        if epoch >= self.epoch:
            now = time.time_ns()
            self._apply_control(
                TradingStateUpdate(
                    state=TradingState.HALTED,
                    epoch=epoch,
                    reason=str(args.get("reason", "")),
                    by=str(args.get("by", "qts-ctl")),
                    changed_ns=now,
                    ts_ns=now,
                )
            )
            logger.critical(
                "emergency HALT at epoch {} by {}: {} (supervisor unreachable)",
                epoch,
                args.get("by"),
                args.get("reason"),
            )
        counters = self.heartbeat_counters()
        return {
            "service": self.name,
            "state": self.trading_state.value,
            "epoch": self.epoch,
            **{k: counters.get(k, 0) for k in ("halt_cancels_sent", "open_orders")},
        }

    def on_state_change(self, previous: TradingState, msg: TradingStateUpdate) -> None:
        """Override to act on a new trading state (execution cancels everything on HALTED)."""

    # ----------------------------------------------------------------------------- heartbeat
    def heartbeat(self) -> None:
        if not self.sends_heartbeats:
            return
        self._hb_seq += 1
        hb = Heartbeat(
            service=self.name,
            pid=os.getpid(),
            protocol=PROTOCOL_VERSION,
            seq=self._hb_seq,
            started_ns=self.started_ns,
            ts_ns=time.time_ns(),
            epoch_ack=self.epoch_ack,
            status=self.status,
            detail=self.detail,
            counters=self.heartbeat_counters(),
            histograms={k: h.wire() for k, h in self.histograms.items()},
        )
        try:
            self._hb.send(codec.encode(hb), zmq.NOBLOCK)
        except zmq.Again:
            self.count("heartbeat_dropped")

    def heartbeat_counters(self) -> dict[str, int]:
        return self.counters

    # ----------------------------------------------------------------------------- lifecycle
    def setup(self) -> None:
        """Open sockets and register handlers. Override."""

    def teardown(self) -> None:
        """Release resources on the way out. Override."""

    def stop(self, reason: str, code: int = 0) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self._exit_code = code

    def _signal(self, signum: int, frame: Any) -> None:
        self.stop(signal.Signals(signum).name)

    def _open_runtime_sockets(self) -> None:
        self._ctl = self.bind(zmq.ROUTER, ctl_name(self.name))
        self._ctl_decoder = msgspec.msgpack.Decoder(CtlRequest)
        self.poller.register(self._ctl, zmq.POLLIN)
        self.command("ping", self._cmd_ping)
        if self.listens_to_control:
            self.command("emergency_halt", self._cmd_emergency_halt)
        if self.sends_heartbeats:
            self._hb = self.connect(zmq.PUSH, "heartbeat")
            self._hb.setsockopt(zmq.SNDHWM, 100)
            self.every(self.settings.runtime.heartbeat_interval_ms / 1000.0, self.heartbeat)
        if self.listens_to_control:
            self._control = self.connect(zmq.SUB, "control")
            self.on(self._control, "control", self._on_control)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        self._open_runtime_sockets()
        self.setup()
        # what setup built lives as long as the process: out of the collector's way, so
        # collections on the hot path scan only what messages allocate (shorter pauses)
        gc.collect()
        gc.freeze()
        if self.status == "starting":
            self.status = "ready"
        logger.info("{} started (pid {})", self.name, os.getpid())
        poll_ms = self.settings.runtime.poll_ms
        try:
            while self._stop_reason is None:
                timeout = poll_ms
                if self._timers:
                    next_due = min(t.due for t in self._timers)
                    timeout = max(0, min(poll_ms, int((next_due - time.monotonic()) * 1000) + 1))
                events = self.poller.poll(timeout)
                for sock, _ in events:
                    if sock is self._ctl:
                        self._on_ctl()
                        continue
                    _stream, handler = self._handlers[sock]
                    self._drain(sock, handler)
                now = time.monotonic()
                for t in self._timers:
                    if now >= t.due:
                        t.due = now + t.interval
                        t.fn()
        finally:
            self.status = "stopping"
            logger.info("{} stopping: {}", self.name, self._stop_reason or "error")
            try:
                self.teardown()
            finally:
                curve.stop(self.ctx)
                self.ctx.destroy(linger=0)
        return self._exit_code

    def _drain(self, sock: zmq.Socket[Any], handler: Callable[[Any], None]) -> None:
        # bounded so one busy socket cannot starve the others, timers or the control plane
        multipart = sock in self._routers
        n = 0
        try:
            # ask the socket before each read instead of reading until zmq.Again: raising and
            # catching that exception costs more than the message's own handling (py-spy)
            while n < 256 and sock.get(_EVENTS) & _POLLIN:  # type: ignore[operator]
                frame = sock.recv_multipart(_NOBLOCK) if multipart else sock.recv(_NOBLOCK)
                n += 1
                handler(frame)
        finally:
            if n:  # frames received per stream, counted once a batch (metric qts_messages)
                key = "msgs." + self._handlers[sock][0]
                self.counters[key] = self.counters.get(key, 0) + n


# plain ints: pyzmq's enum members cost an enum construction per use on the hot path
_EVENTS, _POLLIN, _NOBLOCK = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.NOBLOCK)


def new_request_id() -> str:
    return uuid.uuid4().hex[:12]


def main(service_cls: type[Service]) -> int:
    """Entry point shared by every `python -m services.<name>`."""
    try:
        settings = load_settings()
        curve.configure(settings, service_cls.name)  # tcp:// endpoints without keys: exit 2
    except ConfigError as exc:
        print(f"{service_cls.name}: {exc}", flush=True, file=__import__("sys").stderr)
        return 2
    log.setup(service_cls.name, settings.runtime.log_level, settings.runtime.log_json)
    try:
        return service_cls(settings).run()
    except Exception:
        # crash-only: a broken invariant exits non-zero and supervisord restarts the process
        logger.opt(exception=True).critical("{} crashed", service_cls.name)
        return 1
