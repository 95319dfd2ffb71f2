"""CURVE on every tcp:// socket: keys, who may connect (ZAP), and setting both up on sockets.

On one host every endpoint is ipc:// and nothing here applies. Across hosts an endpoint set to
tcp://host:port in runtime.endpoints is encrypted and authenticated with ZeroMQ CURVE:

- every party (each service and "ctl", the operator's qts-ctl) has a keypair;
- a socket that binds a tcp:// endpoint is a CURVE server; a ZAP handler (a
  zmq.auth ThreadAuthenticator on the process's context) accepts only clients whose public
  key is in `<runtime.curve_dir>/public/` and refuses every other key and every unkeyed client;
- a socket that connects is a CURVE client that knows the server's public key by the endpoint's
  binder (protocol.endpoints: `md` -> observer, `ctl.risk` -> risk).

Key directory (`qts-ctl keys generate [--dir]` writes it; docs/deployment.md):
    public/<party>.key           every party's public key: copy to every host
    private/<party>.key_secret   mode 0600, only on the host that runs that party
Start-up refuses tcp:// endpoints without keys (CurveError, a ConfigError: exit 2). Secret keys
are never logged or shown in a repr.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from protocol.endpoints import ENDPOINTS, SERVICES
from services.runtime.log import logger
from services.runtime.settings import ConfigError, Settings

PARTIES = (*SERVICES, "ctl")  # "ctl": qts-ctl, the operator's client
SECRET_MODE = 0o600


class CurveError(ConfigError):
    """tcp:// endpoints without usable keys, or a key directory that cannot be written."""


def is_tcp(address: str) -> bool:
    return address.startswith("tcp://")


def public_dir(directory: Path) -> Path:
    return directory / "public"


def private_dir(directory: Path) -> Path:
    return directory / "private"


def generate(
    directory: Path, parties: tuple[str, ...] = PARTIES, overwrite: bool = False
) -> list[str]:
    """Write a keypair per party (zmq.auth.create_certificates); secrets mode 0600 in a 0700
    directory. Refuses to replace existing keys unless `overwrite` (every host then needs the
    new public keys). Returns the parties written."""
    pub, priv = public_dir(directory), private_dir(directory)
    existing = [
        p for p in parties if (pub / f"{p}.key").exists() or (priv / f"{p}.key_secret").exists()
    ]
    if existing and not overwrite:
        raise CurveError(
            f"keys already exist in {directory} for {', '.join(existing)}; replacing them "
            "locks out every host that has the old public keys (pass --force to do it anyway)"
        )
    try:
        pub.mkdir(parents=True, exist_ok=True)
        priv.mkdir(parents=True, exist_ok=True)
        os.chmod(priv, 0o700)
        for party in parties:
            # created in a private temporary directory, so the secret is never readable by others
            with tempfile.TemporaryDirectory(dir=priv) as tmp:
                public_file, secret_file = zmq.auth.create_certificates(tmp, party)
                os.chmod(secret_file, SECRET_MODE)
                shutil.move(public_file, pub / f"{party}.key")
                os.replace(secret_file, priv / f"{party}.key_secret")
    except OSError as exc:
        raise CurveError(f"cannot write keys in {directory}: {exc}") from None
    return list(parties)


def binder(name: str) -> str:
    """The party that binds the named endpoint: the server whose public key a client needs."""
    if name.startswith("ctl."):
        return name.removeprefix("ctl.")
    if name not in ENDPOINTS:
        raise CurveError(f"runtime.endpoints: unknown endpoint {name!r}")
    return ENDPOINTS[name][0]


@dataclass(frozen=True)
class Identity:
    """This process's keys and the servers' public keys by tcp:// address."""

    party: str
    public: bytes
    secret: bytes = field(repr=False)
    allowed_dir: Path  # public keys of the clients a server accepts
    servers: dict[str, bytes]  # tcp address -> the binder's public key


_identity: Identity | None = None
_authenticators: dict[zmq.Context[Any], ThreadAuthenticator] = {}
_lock = threading.Lock()


def load(settings: Settings, party: str) -> Identity | None:
    """The keys `party` needs for the configured tcp:// endpoints; None if there are none.
    Raises CurveError naming the missing or unsafe file."""
    rt = settings.runtime
    tcp = {name: addr for name, addr in rt.endpoints.items() if is_tcp(addr)}
    if not tcp:
        return None
    directory = rt.curve_path
    secret_file = private_dir(directory) / f"{party}.key_secret"
    hint = f"run `qts-ctl keys generate --dir {directory}` and copy the keys (docs/deployment.md)"
    if not secret_file.is_file():
        raise CurveError(
            f"runtime.endpoints has tcp:// endpoints ({', '.join(sorted(tcp))}) but {party} "
            f"has no CURVE secret key at {secret_file}: {hint}"
        )
    mode = secret_file.stat().st_mode & 0o777
    if mode & 0o077:
        raise CurveError(f"{secret_file} is readable by others (mode {mode:o}): chmod 600 it")
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise CurveError(f"{secret_file} is not a CURVE key file: {exc}") from None
    if not secret:
        raise CurveError(f"{secret_file} holds no secret key")
    servers: dict[str, bytes] = {}
    for name, addr in tcp.items():
        server = binder(name)
        key_file = public_dir(directory) / f"{server}.key"
        if not key_file.is_file():
            raise CurveError(f"no public key for {server} (binds {name} at {addr}): {key_file}")
        try:
            servers[addr] = zmq.auth.load_certificate(key_file)[0]
        except (OSError, ValueError) as exc:
            raise CurveError(f"{key_file} is not a CURVE key file: {exc}") from None
    return Identity(party, public, secret, public_dir(directory), servers)


def configure(settings: Settings, party: str) -> Identity | None:
    """Load this process's keys once at start (services' main(), qts-ctl). Raises CurveError."""
    global _identity
    _identity = load(settings, party)
    return _identity


def secure(sock: zmq.Socket[Any], address: str, *, bind: bool) -> None:
    """Make `sock` a CURVE server (bind) or client (connect) if `address` is tcp://; call it
    before bind()/connect(). Never applies to ipc:// or inproc://."""
    if not is_tcp(address):
        return
    ident = _identity
    if ident is None:
        raise CurveError(
            f"{address} is a tcp:// endpoint but no CURVE keys are loaded: set it in "
            "runtime.endpoints and generate keys (qts-ctl keys generate)"
        )
    sock.curve_secretkey = ident.secret
    sock.curve_publickey = ident.public
    if bind:
        _authenticate(sock.context, ident)
        sock.curve_server = True
        return
    server = ident.servers.get(address)
    if server is None:
        raise CurveError(f"{address} is not in runtime.endpoints: no server key known for it")
    sock.curve_serverkey = server


def _authenticate(ctx: zmq.Context[Any], ident: Identity) -> None:
    """Start the context's ZAP handler once, before its first CURVE server binds (without a
    handler libzmq would accept any client that knows the server's public key)."""
    with _lock:
        if ctx in _authenticators:
            return
        auth = ThreadAuthenticator(ctx, log=_zap_log())
        auth.start()
        auth.configure_curve(domain="*", location=str(ident.allowed_dir))
        _authenticators[ctx] = auth


def stop(ctx: zmq.Context[Any]) -> None:
    """Stop the context's ZAP handler (before ctx.destroy(), which would close its socket)."""
    with _lock:
        auth = _authenticators.pop(ctx, None)
    if auth is not None:
        auth.stop()


class _RefusalLog(logging.Handler):
    """zmq.auth's log lines about refused clients, to loguru, at most one a second per key."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "DENIED" not in text and record.levelno < logging.WARNING:
            return
        now = time.monotonic()
        if now - self.last.get(text, 0.0) < 1.0:
            return
        if len(self.last) > 1000:
            self.last.clear()
        self.last[text] = now
        logger.warning("CURVE client refused: {}", text)  # public keys only, never a secret


def _zap_log() -> logging.Logger:
    log = logging.getLogger("qts.zap")
    if not log.handlers:
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.addHandler(_RefusalLog())
    return log
