"""The two transports to an external Observer: a Unix stream socket and ZeroMQ ipc://.

Both are non-blocking and polled from the observer's loop; neither ever waits. A transport
moves bytes and reports its connection coming up or going down; the protocol is feed.py's.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from services.observer.sources import wire

READ_CHUNK = 256 * 1024
MAX_OUT = 1 << 20  # bytes QTS may have queued towards the Observer before it gives up on it


class TransportError(Exception):
    """The connection is gone or unusable."""


def parse_endpoint(endpoint: str) -> tuple[str, str]:
    """'unix:///run/obs.sock' -> ('unix', '/run/obs.sock'); 'ipc:///run/obs' -> ('ipc', ...)."""
    for scheme in ("unix", "ipc"):
        prefix = f"{scheme}://"
        if endpoint.startswith(prefix):
            path = endpoint.removeprefix(prefix)
            if not path.startswith("/"):
                raise ValueError(
                    f"observer endpoint {endpoint!r}: the path must be absolute "
                    f"({prefix}/path/to/socket)"
                )
            return scheme, path
    raise ValueError(f"observer endpoint {endpoint!r} is neither unix://<path> nor ipc://<path>")


class UnixTransport:
    """QTS connects to the Observer's listening Unix stream socket; frames are length-prefixed.
    `lossy` is False: the kernel delivers in order or the connection breaks."""

    lossy = False

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock: socket.socket | None = None
        self.reader = wire.FrameReader()
        self.out = bytearray()
        self.eof = False

    @property
    def name(self) -> str:
        return f"unix://{self.path}"

    def open(self) -> bool:
        """Try to connect once; True when connected. Raises TransportError with the cause."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot connect to {self.path}: {exc.strerror or exc}") from exc
        self.sock = sock
        self.reader = wire.FrameReader()
        self.out = bytearray()
        self.eof = False
        return True

    def events(self) -> list[str]:
        return []  # the connection is up from open() until recv/send fail

    def recv(self, max_bytes: int) -> list[bytes]:
        sock = self.sock
        if sock is None:
            return []
        if self.eof:
            raise TransportError(f"the Observer closed {self.path}")
        frames: list[bytes] = []
        got = 0
        while got < max_bytes:
            try:
                data = sock.recv(READ_CHUNK)
            except BlockingIOError:
                break
            except OSError as exc:
                raise TransportError(f"read from {self.path}: {exc.strerror or exc}") from exc
            if not data:
                self.eof = True  # its last words (a Reject) first; the next call reports it
                if not frames:
                    raise TransportError(f"the Observer closed {self.path}")
                break
            got += len(data)
            try:
                frames += self.reader.feed(data)
            except wire.FrameError as exc:
                raise TransportError(f"{self.path}: {exc}") from exc
        return frames

    def send(self, body: bytes) -> None:
        if self.sock is None:
            return
        self.out += wire.LEN.pack(len(body)) + body
        self.flush()

    def flush(self) -> None:
        sock = self.sock
        if sock is None or not self.out:
            return
        try:
            n = sock.send(self.out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                n = 0
            else:
                raise TransportError(f"write to {self.path}: {exc.strerror or exc}") from exc
        del self.out[:n]
        if len(self.out) > MAX_OUT:
            raise TransportError(f"the Observer at {self.path} reads nothing we send")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class ZmqTransport:
    """ZeroMQ: the Observer binds PUB at ipc://<path> (its market data, one message a frame)
    and PULL at ipc://<path>.req (our Hello, SnapshotRequest, ClientHeartbeat); QTS connects
    SUB and PUSH. ZeroMQ reconnects by itself with back-off (RECONNECT_IVL..RECONNECT_IVL_MAX);
    a socket monitor on the SUB tells us when the connection comes up or goes down.
    `lossy` is True: PUB drops for a slow or late subscriber (the feed seq shows it) and our
    Hello may arrive before our subscription does, so an unanswered Hello is repeated."""

    lossy = True

    def __init__(
        self,
        path: str,
        ctx: zmq.Context[Any],
        reconnect_min_ms: int,
        reconnect_max_ms: int,
        rcvhwm: int = 100_000,
    ) -> None:
        self.path = path
        self.rcvhwm = rcvhwm
        self.ctx = ctx
        self.reconnect = (reconnect_min_ms, reconnect_max_ms)
        self.sub: zmq.Socket[Any] | None = None
        self.push: zmq.Socket[Any] | None = None
        self.monitor: zmq.Socket[Any] | None = None

    @property
    def name(self) -> str:
        return f"ipc://{self.path}"

    def open(self) -> bool:
        """Start connecting (ZeroMQ connects in the background): False until events() says up."""
        lo, hi = self.reconnect
        sub = self.ctx.socket(zmq.SUB)
        push = self.ctx.socket(zmq.PUSH)
        for sock in (sub, push):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, lo)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, hi)
        sub.setsockopt(zmq.RCVHWM, self.rcvhwm)  # runtime.rcvhwm: beyond it the PUB drops
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        push.setsockopt(zmq.SNDHWM, 100)
        push.setsockopt(zmq.IMMEDIATE, 1)  # no queueing towards an Observer that is not there
        self.monitor = sub.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        sub.connect(f"ipc://{self.path}")
        push.connect(f"ipc://{self.path}.req")
        self.sub, self.push = sub, push
        return False

    def events(self) -> list[str]:
        out: list[str] = []
        mon = self.monitor
        while mon is not None and mon.poll(0):
            event = recv_monitor_message(mon)["event"]
            out.append("up" if event == zmq.EVENT_CONNECTED else "down")
        return out

    def recv(self, max_bytes: int) -> list[bytes]:
        sub = self.sub
        frames: list[bytes] = []
        if sub is None:
            return frames
        got = 0
        while got < max_bytes:
            try:
                frame = sub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            frames.append(frame)
            got += len(frame) + 64  # a frame's own overhead, so empty frames still end a batch
        return frames

    def send(self, body: bytes) -> None:
        if self.push is None:
            return
        try:
            self.push.send(body, zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected: the handshake repeats once it is

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.sub is not None:
            self.sub.disable_monitor()
        for sock in (self.monitor, self.sub, self.push):
            if sock is not None:
                sock.close(linger=0)
        self.monitor = self.sub = self.push = None


Transport = UnixTransport | ZmqTransport
