"""Encoding and one typed decoder per socket.

A decoder accepts exactly the union its socket may carry: anything else is a DecodeError that the
receiving service counts, logs with the socket's name and drops (services/runtime/service.py).
Encoders and decoders are built once per process; msgspec's are not free to construct.
"""

from __future__ import annotations

from typing import Any

import msgspec

from protocol import messages as m
from protocol import venue as v

DecodeError = (msgspec.DecodeError, msgspec.ValidationError)
"""What a decoder raises on a bad frame (ValidationError is a subclass; listed for clarity)."""

_encoder = msgspec.msgpack.Encoder()
encode = _encoder.encode
"""Encode any protocol Struct to MessagePack bytes."""

# One union per socket. The key is the logical stream name used in logs and counters.
SOCKET_TYPES: dict[str, Any] = {
    "md": m.MarketData,
    "marks": m.MarketData,
    "intents": m.Intent,
    "orders": m.Order,
    "exec": m.ExecEvent,
    "portfolio": m.PortfolioStream,
    "control": m.Control,
    "heartbeat": m.HeartbeatStream,
    "ctl_request": m.CtlRequest,
    "ctl_reply": m.CtlReply,
    "venue_request": v.VenueRequest,
    "venue_reply": v.VenueReply,
    "venue_notice": v.VenueNotice,
}


def decoder(stream: str) -> msgspec.msgpack.Decoder[Any]:
    """The typed decoder for one stream (see SOCKET_TYPES)."""
    return msgspec.msgpack.Decoder(SOCKET_TYPES[stream])


def to_builtins(obj: Any) -> Any:
    """A Struct (or nested) as plain JSON-able values, for --json output and ctl replies."""
    return msgspec.to_builtins(obj)
