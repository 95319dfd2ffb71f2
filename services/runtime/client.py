"""Request/reply to a service's ctl ROUTER: used by qts-ctl and by services that recover state
from another (portfolio asks execution for the events it missed).

Every request polls with a timeout and raises CtlTimeout when it expires (never hangs).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec
import zmq

from protocol import codec
from protocol.codes import CtlCode
from protocol.endpoints import ctl_name, endpoint
from protocol.messages import CtlReply, CtlRequest
from services.runtime import curve


class CtlTimeout(Exception):
    """No reply within the timeout: the service is down, busy or unreachable."""


class CtlFailed(Exception):
    """The service answered ok=False."""

    def __init__(self, reply: CtlReply) -> None:
        super().__init__(f"{reply.code}: {reply.reason}")
        self.reply = reply


_reply_decoder = msgspec.msgpack.Decoder(CtlReply)


def ctl_address(run_dir: str | Path, service: str, overrides: dict[str, str] | None = None) -> str:
    return endpoint(run_dir, ctl_name(service), overrides)


def request(
    address: str,
    command: str,
    args: dict[str, Any] | None = None,
    timeout: float = 2.0,
    ctx: zmq.Context[Any] | None = None,
) -> CtlReply:
    """Send one command and wait for its reply. Raises CtlTimeout."""
    ctx = ctx or zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        curve.secure(sock, address, bind=False)  # a CURVE client on tcp:// (runtime/curve.py)
        sock.connect(address)
        req = CtlRequest(request_id=uuid.uuid4().hex[:12], command=command, args=args or {})
        deadline_ms = int(timeout * 1000)
        # a peer that refused us (CURVE: unknown key) leaves no pipe to queue on: never block
        sock.setsockopt(zmq.SNDTIMEO, deadline_ms)
        try:
            sock.send_multipart([b"", codec.encode(req)])
        except zmq.Again:
            raise CtlTimeout(f"{command!r}: not connected to {address} in {timeout:g}s") from None
        while True:
            if not sock.poll(deadline_ms, zmq.POLLIN):
                raise CtlTimeout(f"no reply to {command!r} from {address} within {timeout:g}s")
            parts = sock.recv_multipart()
            try:
                rep = _reply_decoder.decode(parts[-1])
            except codec.DecodeError as exc:
                return CtlReply(
                    request_id=req.request_id,
                    ok=False,
                    code=CtlCode.INTERNAL,
                    reason=f"reply does not decode: {exc}",
                )
            if rep.request_id in (req.request_id, ""):
                return rep
    finally:
        sock.close(0)


def call(
    address: str,
    command: str,
    args: dict[str, Any] | None = None,
    timeout: float = 2.0,
    ctx: zmq.Context[Any] | None = None,
) -> Any:
    """request() that returns the data of an ok reply and raises CtlFailed otherwise."""
    rep = request(address, command, args, timeout, ctx)
    if not rep.ok:
        raise CtlFailed(rep)
    return rep.data
