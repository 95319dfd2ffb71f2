"""CURVE on tcp:// endpoints (services/runtime/curve.py): key files, start-up checks, and real
sockets on 127.0.0.1 showing a keyed client served and an unkeyed or unknown one refused."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth
from click.testing import CliRunner
from zmq.utils.monitor import recv_monitor_message

from services.ctl.cli import cli
from services.runtime import client, curve
from services.runtime.log import logger
from services.runtime.settings import REPO_ROOT, Settings, load_settings

HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(keys: Path, endpoints: dict[str, str]) -> Settings:
    flow = ", ".join(f"{k}: '{v}'" for k, v in endpoints.items())
    env = {"QTS_RUNTIME__CURVE_DIR": str(keys), "QTS_RUNTIME__ENDPOINTS": "{" + flow + "}"}
    return load_settings(env=env)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    curve.generate(directory)
    return directory


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    curve.stop(context)
    context.destroy(linger=0)
    curve._identity = None


# ------------------------------------------------------------------------------- key files
def test_generate_writes_a_keypair_per_party_with_private_secrets(keys: Path) -> None:
    for party in curve.PARTIES:
        public, secret = zmq.auth.load_certificate(keys / "private" / f"{party}.key_secret")
        assert secret and zmq.auth.load_certificate(keys / "public" / f"{party}.key") == (
            public,
            None,
        )
        mode = stat.S_IMODE((keys / "private" / f"{party}.key_secret").stat().st_mode)
        assert mode == 0o600, f"{party}: {mode:o}"
    assert stat.S_IMODE((keys / "private").stat().st_mode) == 0o700
    assert sorted(p.name for p in (keys / "private").iterdir()) == sorted(
        f"{p}.key_secret" for p in curve.PARTIES
    )  # no temporary directory left behind


def test_generate_refuses_to_replace_keys_unless_forced(keys: Path) -> None:
    before = (keys / "public" / "risk.key").read_bytes()
    with pytest.raises(curve.CurveError, match=r"already exist.*--force"):
        curve.generate(keys)
    assert (keys / "public" / "risk.key").read_bytes() == before
    curve.generate(keys, overwrite=True)
    assert (keys / "public" / "risk.key").read_bytes() != before


def test_qts_ctl_keys_generate(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "k"
    result = runner.invoke(cli, ["keys", "generate", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert "CURVE keys for supervisor" in result.output
    assert (target / "private" / "ctl.key_secret").is_file()
    secret = zmq.auth.load_certificate(target / "private" / "ctl.key_secret")[1]
    assert secret is not None and secret.decode() not in result.output
    again = runner.invoke(cli, ["keys", "generate", "--dir", str(target)])
    assert again.exit_code == 1 and "already exist" in again.output
    forced = runner.invoke(cli, ["keys", "generate", "--dir", str(target), "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    assert '"dir"' in forced.output


# ------------------------------------------------------------------------------- start-up
def test_no_tcp_endpoint_needs_no_keys(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "none", {"md": "ipc:///tmp/x.sock"})
    assert curve.load(settings, "risk") is None


def test_tcp_endpoint_without_keys_is_refused_with_the_file_and_the_fix(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "none", {"md": "tcp://127.0.0.1:5999"})
    with pytest.raises(curve.CurveError, match=r"risk.key_secret.*qts-ctl keys generate"):
        curve.load(settings, "risk")


def test_a_secret_readable_by_others_is_refused(keys: Path) -> None:
    os.chmod(keys / "private" / "risk.key_secret", 0o644)
    settings = settings_for(keys, {"md": "tcp://127.0.0.1:5999"})
    with pytest.raises(curve.CurveError, match=r"readable by others.*chmod 600"):
        curve.load(settings, "risk")


def test_a_missing_server_key_and_an_unknown_endpoint_are_refused(keys: Path) -> None:
    (keys / "public" / "observer.key").unlink()
    with pytest.raises(curve.CurveError, match=r"no public key for observer \(binds md"):
        curve.load(settings_for(keys, {"md": "tcp://127.0.0.1:5999"}), "risk")
    with pytest.raises(curve.CurveError, match="unknown endpoint 'nope'"):
        curve.load(settings_for(keys, {"nope": "tcp://127.0.0.1:5999"}), "risk")


def test_the_identity_never_shows_its_secret(keys: Path) -> None:
    ident = curve.load(settings_for(keys, {"md": "tcp://127.0.0.1:5999"}), "risk")
    assert ident is not None
    assert ident.secret.decode() not in repr(ident)
    assert ident.public.decode() in repr(ident)


def test_a_service_with_a_tcp_endpoint_and_no_keys_exits_2(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QTS_RUNTIME__VAR_DIR": str(tmp_path / "var"),
        "QTS_RUNTIME__ENDPOINTS": "{intents: 'tcp://127.0.0.1:5999'}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "services.risk"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "no CURVE secret key" in proc.stderr and "qts-ctl keys generate" in proc.stderr


# ------------------------------------------------------------------------------- sockets
def test_ipc_and_inproc_sockets_are_left_alone(keys: Path, ctx: zmq.Context[Any]) -> None:
    curve.configure(settings_for(keys, {"md": "tcp://127.0.0.1:5999"}), "risk")
    sock = ctx.socket(zmq.PUB)
    try:
        curve.secure(sock, "ipc:///tmp/qts-curve-test.sock", bind=True)
        curve.secure(sock, "inproc://x", bind=False)
        assert sock.mechanism == zmq.NULL
    finally:
        sock.close(0)


def test_secure_without_configured_keys_refuses_tcp(ctx: zmq.Context[Any]) -> None:
    curve._identity = None
    sock = ctx.socket(zmq.DEALER)
    try:
        with pytest.raises(curve.CurveError, match="no CURVE keys are loaded"):
            curve.secure(sock, "tcp://127.0.0.1:5999", bind=False)
    finally:
        sock.close(0)


def handshake(ctx: zmq.Context[Any], sock: zmq.Socket[Any], address: str) -> int:
    """Connect `sock` and return the first handshake event the connection reports."""
    monitor = sock.get_monitor_socket(HANDSHAKE_EVENTS)
    try:
        sock.connect(address)
        if not monitor.poll(10_000):
            raise AssertionError(f"no handshake event from {address}")
        return int(recv_monitor_message(monitor)["event"])
    finally:
        sock.disable_monitor()
        monitor.close(0)


@pytest.fixture
def server(keys: Path, ctx: zmq.Context[Any]) -> Iterator[tuple[str, zmq.Socket[Any]]]:
    """The risk service's ctl ROUTER on tcp://127.0.0.1, CURVE server with ZAP."""
    address = f"tcp://127.0.0.1:{free_port()}"
    curve.configure(settings_for(keys, {"ctl.risk": address}), "risk")
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    curve.secure(router, address, bind=True)
    router.bind(address)
    yield address, router
    router.close(0)


def test_a_keyed_client_is_served_encrypted(
    server: tuple[str, zmq.Socket[Any]], ctx: zmq.Context[Any]
) -> None:
    address, router = server
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    try:
        curve.secure(dealer, address, bind=False)
        assert dealer.mechanism == zmq.CURVE
        assert handshake(ctx, dealer, address) == zmq.EVENT_HANDSHAKE_SUCCEEDED
        dealer.send(b"hello")
        assert router.poll(5_000)
        identity, frame = router.recv_multipart()
        assert frame == b"hello"
        router.send_multipart([identity, b"back"])
        assert dealer.poll(5_000) and dealer.recv() == b"back"
    finally:
        dealer.close(0)


def test_an_unkeyed_client_is_refused(
    server: tuple[str, zmq.Socket[Any]], ctx: zmq.Context[Any]
) -> None:
    address, router = server
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    try:
        event = handshake(ctx, dealer, address)
        # NULL against a CURVE server: a protocol error, or the server hanging up first
        assert event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        with contextlib.suppress(zmq.Again):  # the refused connection left no pipe
            dealer.send(b"hello", zmq.NOBLOCK)
        assert not router.poll(300)  # nothing reaches the service
    finally:
        dealer.close(0)


def test_a_client_with_an_unknown_key_is_refused_and_logged(
    server: tuple[str, zmq.Socket[Any]], ctx: zmq.Context[Any], keys: Path
) -> None:
    address, router = server
    public, secret = zmq.curve_keypair()
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    try:
        dealer.curve_secretkey = secret
        dealer.curve_publickey = public
        dealer.curve_serverkey = zmq.auth.load_certificate(keys / "public" / "risk.key")[0]
        assert handshake(ctx, dealer, address) == zmq.EVENT_HANDSHAKE_FAILED_AUTH
        with contextlib.suppress(zmq.Again):  # the refused connection left no pipe
            dealer.send(b"hello", zmq.NOBLOCK)
        assert not router.poll(300)
    finally:
        dealer.close(0)
        logger.remove(sink)
    refused = [line for line in lines if "CURVE client refused" in line]
    assert refused and public.decode() in refused[0]
    assert secret.decode() not in "".join(lines)


def test_a_ctl_request_refused_by_the_server_times_out(
    server: tuple[str, zmq.Socket[Any]], keys: Path, tmp_path: Path
) -> None:
    """A client whose key the server does not know gets CtlTimeout, never a hang."""
    other = tmp_path / "other"  # a qts-ctl key made elsewhere, with the right server key
    curve.generate(other, parties=("ctl",))
    shutil.copy(keys / "public" / "risk.key", other / "public" / "risk.key")
    address, router = server
    curve.configure(settings_for(other, {"ctl.risk": address}), "ctl")
    for _ in range(3):
        with pytest.raises(client.CtlTimeout):
            client.request(address, "ping", timeout=0.3)
    assert not router.poll(0)


def test_ctl_requests_use_curve(server: tuple[str, zmq.Socket[Any]]) -> None:
    """client.request (qts-ctl, services asking each other) sets CURVE up on tcp:// itself: the
    request reaches the ROUTER; no answer comes, so it times out as any unanswered request."""
    address, router = server
    with pytest.raises(client.CtlTimeout):
        client.request(address, "ping", timeout=1.0)
    assert router.poll(0)
    assert router.recv_multipart()[-1]  # the encoded CtlRequest arrived over CURVE
