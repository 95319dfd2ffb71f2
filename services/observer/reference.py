"""The reference external Observer: serves the synthetic market (or a recording) over the external
Observer protocol (docs/observer_integration.md) on a Unix socket or a ZeroMQ ipc:// endpoint.

    python -m services.observer.reference --listen unix:///tmp/obs.sock --rate 2000
    python -m services.observer.reference --listen ipc:///tmp/obs --deltas --vi-every 500

It is what the integration tests run as a separate process and an example for integrators: one
loop, never blocked by a client (a client whose buffer passes --max-buffer loses messages, and
sees the gap in `seq`). Fault injection for tests: --gap-every N (every Nth data message is
sequenced but not sent), --bad-frame-every N (a malformed frame after every Nth message),
--versions (the protocol versions it claims to speak).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import zmq

from protocol.enums import MarketPhase
from protocol.messages import Book, EndOfStream, Instrument, PhaseChanged, Trade
from services.observer.replay import read_recording
from services.observer.sources import wire
from services.observer.sources.transport import parse_endpoint
from services.observer.synthetic import SyntheticSource
from services.runtime.settings import ObserverSettings

TICK_S = 0.002
BAD_FRAMES = (
    b"\x93\x01\x02",  # msgpack, but an array, not a message
    wire.encode(wire.TradeTick(seq=0, symbol="X", exch_ns=0, price=1, qty=1))[:-3],  # truncated
    msgspec.msgpack.encode({"t": "trade", "seq": 1, "symbol": "005930", "price": -5}),
)


def log(text: str) -> None:
    print(f"ref-observer: {text}", file=sys.stderr, flush=True)


class Client:
    """One Unix-socket connection: frames in, a bounded byte buffer out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = wire.FrameReader()
        self.out = bytearray()
        self.welcomed = False
        self.dropped = 0


class Reference:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scheme, self.path = parse_endpoint(args.listen)
        self.session = time.time_ns()
        self.seq = 0
        self.sent = 0  # data messages generated (sent or deliberately skipped)
        self.decode = wire.qts_decoder().decode
        self.instruments: dict[str, wire.InstrumentInfo] = {}
        self.books: dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
        self.status: dict[str, MarketPhase] = {}
        self.phase = MarketPhase.CONTINUOUS
        self.clients: dict[int, Client] = {}
        self.stop = False
        self.welcomed_any = False  # --wait-client: the stream starts with the first Welcome
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.poller = zmq.Poller()
        self.listener: socket.socket | None = None
        self.pub: zmq.Socket[Any] | None = None
        self.pull: zmq.Socket[Any] | None = None
        self.events = self.source()

    # --------------------------------------------------------------------------- sockets
    def open(self) -> None:
        if self.scheme == "unix":
            if os.path.exists(self.path):
                os.unlink(self.path)
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.setblocking(False)
            self.listener.bind(self.path)
            self.listener.listen(8)
            self.poller.register(self.listener.fileno(), zmq.POLLIN)
        else:
            for p in (self.path, self.path + ".req"):
                if os.path.exists(p):
                    os.unlink(p)
            self.pub = self.ctx.socket(zmq.PUB)
            self.pub.setsockopt(zmq.LINGER, 0)
            self.pub.setsockopt(zmq.SNDHWM, self.args.max_buffer // 100)
            self.pub.bind(f"ipc://{self.path}")
            self.pull = self.ctx.socket(zmq.PULL)
            self.pull.setsockopt(zmq.LINGER, 0)
            self.pull.bind(f"ipc://{self.path}.req")
            self.poller.register(self.pull, zmq.POLLIN)
        log(f"listening on {self.args.listen} (session {self.session}, versions {self.versions})")

    def close(self) -> None:
        for client in list(self.clients.values()):
            client.sock.close()
        if self.listener is not None:
            self.listener.close()
        for sock in (self.pub, self.pull):
            if sock is not None:
                sock.close(linger=0)
        self.ctx.term()
        for p in (self.path, self.path + ".req"):
            if os.path.exists(p):
                os.unlink(p)

    @property
    def versions(self) -> list[int]:
        return [int(v) for v in self.args.versions.split(",")]

    # --------------------------------------------------------------------------- sending
    def to_client(self, client: Client, body: bytes, droppable: bool) -> None:
        if droppable and len(client.out) > self.args.max_buffer:
            client.dropped += 1  # a slow reader: it will see the gap and ask for a snapshot
            return
        client.out += wire.LEN.pack(len(body)) + body
        self.flush(client)

    def flush(self, client: Client) -> None:
        if not client.out:
            return
        try:
            n = client.sock.send(client.out)
        except BlockingIOError:
            return
        except OSError:
            self.drop_client(client, "write failed")
            return
        del client.out[:n]

    def broadcast(self, body: bytes, droppable: bool = True) -> None:
        for client in list(self.clients.values()):
            if client.welcomed:
                self.to_client(client, body, droppable)
        if self.pub is not None:
            try:
                self.pub.send(body, zmq.NOBLOCK)
            except zmq.Again:
                pass

    def data(self, msg: msgspec.Struct) -> None:
        """Sequence one data message and send it (or skip it: --gap-every)."""
        self.seq += 1
        self.sent += 1
        msg = msgspec.structs.replace(msg, seq=self.seq)  # type: ignore[type-var]
        args = self.args
        if args.gap_every and self.sent % args.gap_every == 0:
            return
        self.broadcast(wire.encode(msg))
        if args.bad_frame_every and self.sent % args.bad_frame_every == 0:
            self.broadcast(BAD_FRAMES[(self.sent // args.bad_frame_every) % len(BAD_FRAMES)])

    def snapshot(self, request_id: int, client: Client | None) -> None:
        seq = self.seq
        msgs: list[msgspec.Struct] = [wire.SnapshotBegin(request_id=request_id, seq=seq)]
        msgs.append(wire.Session(seq=seq, exch_ns=time.time_ns(), phase=self.phase))
        msgs += [msgspec.structs.replace(i, seq=seq) for i in self.instruments.values()]
        for sym, phase in self.status.items():
            msgs.append(wire.SymbolStatus(seq=seq, symbol=sym, exch_ns=time.time_ns(), phase=phase))
        for sym, (bids, asks) in self.books.items():
            msgs.append(
                wire.BookSnapshot(seq=seq, symbol=sym, exch_ns=time.time_ns(), bids=bids, asks=asks)
            )
        msgs.append(wire.SnapshotEnd(request_id=request_id, seq=seq))
        for msg in msgs:
            body = wire.encode(msg)
            if client is not None:
                self.to_client(client, body, droppable=False)
            elif self.pub is not None:
                self.pub.send(body)
        log(f"served snapshot {request_id} at seq {seq} ({len(msgs) - 2} messages)")

    # --------------------------------------------------------------------------- requests
    def on_request(self, frame: bytes, client: Client | None) -> None:
        try:
            msg = self.decode(frame)
        except wire.DecodeError as exc:
            log(f"bad frame from QTS: {exc}")
            return
        reply: msgspec.Struct
        match msg:
            case wire.Hello():
                common = set(msg.versions) & set(self.versions)
                if not common:
                    reply = wire.Reject(
                        reason="no common protocol version", versions=self.versions, nonce=msg.nonce
                    )
                    log(f"rejected hello: versions {msg.versions}, we speak {self.versions}")
                else:
                    reply = wire.Welcome(
                        version=max(common),
                        feed_id=self.args.feed_id,
                        session=self.session,
                        seq=self.seq,
                        nonce=msg.nonce,
                        heartbeat_ms=self.args.heartbeat_ms,
                    )
                    log(f"welcomed {msg.client} (nonce {msg.nonce}) at seq {self.seq}")
                    self.welcomed_any = True
                self.reply(reply, client)
                if client is not None:
                    client.welcomed = isinstance(reply, wire.Welcome)
                    if not client.welcomed:
                        self.flush(client)
                        self.drop_client(client, "rejected")
            case wire.SnapshotRequest():
                self.snapshot(msg.request_id, client)
            case wire.ClientHeartbeat():
                pass

    def reply(self, msg: msgspec.Struct, client: Client | None) -> None:
        body = wire.encode(msg)
        if client is not None:
            self.to_client(client, body, droppable=False)
        elif self.pub is not None:
            self.pub.send(body)

    def drop_client(self, client: Client, why: str) -> None:
        fd = client.sock.fileno()
        if fd in self.clients:
            self.poller.unregister(fd)
            del self.clients[fd]
        client.sock.close()
        log(f"client gone ({why}; {client.dropped} messages dropped for it)")

    def accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            self.clients[sock.fileno()] = Client(sock)
            self.poller.register(sock.fileno(), zmq.POLLIN)

    def read_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop_client(client, "closed")
            return
        try:
            frames = client.reader.feed(data)
        except wire.FrameError as exc:
            self.drop_client(client, str(exc))
            return
        for frame in frames:
            self.on_request(frame, client)

    # --------------------------------------------------------------------------- market
    def source(self) -> Iterator[Any]:
        if self.args.recording:
            yield from read_recording(Path(self.args.recording))
            return
        synthetic = SyntheticSource(ObserverSettings().symbols, self.args.seed, 2)
        yield from synthetic.instruments()
        yield from synthetic.events()

    def emit(self, event: Any) -> None:
        match event:
            case Trade():
                self.data(
                    wire.TradeTick(
                        seq=0,
                        symbol=event.symbol,
                        exch_ns=event.exch_ns,
                        price=event.price,
                        qty=event.qty,
                        aggressor=event.aggressor,
                        cum_volume=event.cum_volume,
                    )
                )
                vi = self.args.vi_every
                if vi and self.sent % vi == 0:
                    now = self.status.get(event.symbol, MarketPhase.CONTINUOUS)
                    phase = MarketPhase.CONTINUOUS if now is MarketPhase.VI else MarketPhase.VI
                    self.status[event.symbol] = phase
                    self.data(
                        wire.SymbolStatus(
                            seq=0, symbol=event.symbol, exch_ns=event.exch_ns, phase=phase
                        )
                    )
            case Book():
                old = self.books.get(event.symbol)
                new = (list(event.bids), list(event.asks))
                self.books[event.symbol] = new
                if self.args.deltas and old is not None:
                    self.data(
                        wire.BookDelta(
                            seq=0,
                            symbol=event.symbol,
                            exch_ns=event.exch_ns,
                            bids=diff(old[0], new[0], reverse=True),
                            asks=diff(old[1], new[1], reverse=False),
                        )
                    )
                else:
                    self.data(
                        wire.BookSnapshot(
                            seq=0,
                            symbol=event.symbol,
                            exch_ns=event.exch_ns,
                            bids=new[0],
                            asks=new[1],
                        )
                    )
            case Instrument():
                info = wire.InstrumentInfo(
                    seq=0,
                    symbol=event.symbol,
                    base_price=event.base_price,
                    market=event.market,
                    kind=event.kind,
                    upper_limit=event.upper_limit,
                    lower_limit=event.lower_limit,
                    name=event.name,
                )
                self.instruments[event.symbol] = info
                self.data(info)
            case PhaseChanged(symbol=""):
                self.phase = event.phase
                self.data(wire.Session(seq=0, exch_ns=event.exch_ns, phase=event.phase))
            case PhaseChanged():
                self.status[event.symbol] = event.phase
                self.data(
                    wire.SymbolStatus(
                        seq=0, symbol=event.symbol, exch_ns=event.exch_ns, phase=event.phase
                    )
                )
            case EndOfStream():
                pass

    # --------------------------------------------------------------------------- loop
    def run(self) -> int:
        self.open()
        start = time.monotonic()
        next_hb = start
        made = 0
        exhausted = False
        try:
            while not self.stop:
                for key, _ in self.poller.poll(int(TICK_S * 1000)):
                    if self.listener is not None and key == self.listener.fileno():
                        self.accept()
                    elif key is self.pull:
                        assert self.pull is not None
                        while True:
                            try:
                                self.on_request(self.pull.recv(zmq.NOBLOCK), None)
                            except zmq.Again:
                                break
                    elif isinstance(key, int) and key in self.clients:
                        self.read_client(self.clients[key])
                for client in list(self.clients.values()):
                    self.flush(client)
                now = time.monotonic()
                if self.args.wait_client and not self.welcomed_any:
                    start = now  # nothing is due before the first client
                due = int((now - start) * self.args.rate) - made
                while due > 0 and not exhausted:
                    if self.args.max_events and made >= self.args.max_events:
                        exhausted = True
                        break
                    try:
                        self.emit(next(self.events))
                    except StopIteration:
                        exhausted = True
                        log(f"source exhausted at seq {self.seq}")
                    made += 1
                    due -= 1
                if now >= next_hb:
                    next_hb = now + self.args.heartbeat_ms / 1000
                    hb = wire.Heartbeat(seq=self.seq, session=self.session, ts_ns=time.time_ns())
                    self.broadcast(wire.encode(hb), droppable=False)
        finally:
            self.close()
        log("stopped")
        return 0


def diff(
    old: list[tuple[int, int]], new: list[tuple[int, int]], reverse: bool
) -> list[tuple[int, int]]:
    """The levels that changed from old to new (qty 0: removed), best first."""
    before, after = dict(old), dict(new)
    changes = {p: q for p, q in after.items() if before.get(p) != q}
    changes.update({p: 0 for p in before if p not in after})
    return sorted(changes.items(), reverse=reverse)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m services.observer.reference", description=__doc__)
    p.add_argument("--listen", required=True, help="unix:///path.sock or ipc:///path")
    p.add_argument("--rate", type=float, default=1000.0, help="market events per second")
    p.add_argument("--max-events", type=int, default=0, help="stop generating after N (0: never)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--recording", help="serve this recording instead of the synthetic market")
    p.add_argument("--feed-id", default="reference")
    p.add_argument("--versions", default=",".join(map(str, wire.VERSIONS)))
    p.add_argument("--heartbeat-ms", type=int, default=500)
    p.add_argument("--deltas", action="store_true", help="book deltas after the first snapshot")
    p.add_argument("--vi-every", type=int, default=0, help="toggle a VI every N messages")
    p.add_argument("--gap-every", type=int, default=0, help="skip every Nth data message")
    p.add_argument("--bad-frame-every", type=int, default=0, help="a bad frame every N messages")
    p.add_argument("--max-buffer", type=int, default=8 << 20, help="bytes queued per client")
    p.add_argument(
        "--wait-client", action="store_true", help="start the stream at the first Welcome"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ref = Reference(parse_args(argv))

    def on_signal(signum: int, frame: Any) -> None:
        ref.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return ref.run()


if __name__ == "__main__":
    raise SystemExit(main())
