"""Two hosts in Linux network namespaces joined by a veth pair, every endpoint tcp:// with CURVE.

"exchange" (10.77.0.1) runs the order path next to its market data and broker: observer, venue,
strategy, risk, execution. "office" (10.77.0.2) runs the supervisor, portfolio and performance,
and is where the operator's qts-ctl sits. Each host has its own var dir (its ipc paths are its
own), its own secret keys and every public key, as docs/deployment.md says to deploy.

The test trades across the link (the supervisor's ACTIVE state and the heartbeats cross it one
way, execution events and ctl requests the other), cuts the link and shows the exchange host
stop sending new orders within runtime.failsafe_ms although its market data still flows, puts
the link back and shows trading resume, and shows clients without keys, or with a key the
servers do not know, refused.

Needs root and `ip netns`; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.endpoints import ENDPOINTS, SERVICES, ctl_name
from services.runtime import curve
from tests.kit import REPO, eventually

pytestmark = pytest.mark.slow

TAG = f"{os.getpid() % 100_000}"
EXCHANGE, OFFICE = f"qts-ex-{TAG}", f"qts-of-{TAG}"
VETH_EX, VETH_OF = f"qtx{TAG}", f"qto{TAG}"
IP = {EXCHANGE: "10.77.0.1", OFFICE: "10.77.0.2"}
HOSTS = {
    EXCHANGE: ("observer", "venue", "strategy", "risk", "execution"),
    OFFICE: ("supervisor", "portfolio", "performance"),
}
FAILSAFE_MS = 1000
# the freeze is checked against the fail-safe time plus this: the last control message may be
# read up to one loop poll late, and an order that passed its check is journaled just after
MARGIN_MS = 300

PROBE = """
import json, sys
from services.runtime import client, curve
from services.runtime.settings import load_settings
s = load_settings()
curve.configure(s, "ctl")
service, command, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
address = client.ctl_address(s.runtime.run_dir, service, s.runtime.endpoints)
print(json.dumps(client.call(address, command, args, timeout=3.0), default=str))
"""

# connects to the supervisor's ctl endpoint three ways and prints the handshake event of each
INTRUDER = """
import json, sys
import zmq, zmq.auth
from zmq.utils.monitor import recv_monitor_message
from services.runtime import client, curve
from services.runtime.settings import load_settings
s = load_settings()
curve.configure(s, "ctl")
address = client.ctl_address(s.runtime.run_dir, "supervisor", s.runtime.endpoints)
server_key = zmq.auth.load_certificate(s.runtime.curve_path / "public" / "supervisor.key")[0]
names = {zmq.EVENT_HANDSHAKE_SUCCEEDED: "succeeded", zmq.EVENT_HANDSHAKE_FAILED_AUTH: "auth",
         zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol",
         zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "no_detail"}
ctx = zmq.Context()
out = {}
for kind in ("unkeyed", "unknown_key", "operator_key"):
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    if kind == "unknown_key":
        public, secret = zmq.curve_keypair()
        sock.curve_secretkey, sock.curve_publickey = secret, public
        sock.curve_serverkey = server_key
    elif kind == "operator_key":
        curve.secure(sock, address, bind=False)
    monitor = sock.get_monitor_socket(sum(names))
    sock.connect(address)
    out[kind] = names[recv_monitor_message(monitor)["event"]] if monitor.poll(10_000) else "none"
    sock.disable_monitor()
    monitor.close(0)
    sock.close(0)
ctx.term()
out["ping"] = client.call(address, "ping", timeout=5.0)["status"]
print(json.dumps(out))
"""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def namespaces_unavailable() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns add)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"qts-probe-{TAG}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def endpoints() -> dict[str, str]:
    """Every endpoint and every ctl endpoint on tcp://, bound on its binder's host."""
    host_of = {svc: ns for ns, names in HOSTS.items() for svc in names}
    names = [*ENDPOINTS, *(ctl_name(s) for s in SERVICES)]
    out = {}
    for port, name in enumerate(names, start=17_001):
        server = curve.binder(name)
        out[name] = f"tcp://{IP[host_of[server]]}:{port}"
    return out


class Host:
    """One namespace: its var dir, its keys and the services it runs."""

    def __init__(self, ns: str, root: Path, keys: Path) -> None:
        self.ns = ns
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # the keys this host gets: every public key, its own parties' secrets and qts-ctl's
        self.keys = root / "keys"
        shutil.copytree(keys / "public", self.keys / "public")
        (self.keys / "private").mkdir(mode=0o700)
        for party in (*HOSTS[ns], "ctl"):
            shutil.copy2(keys / "private" / f"{party}.key_secret", self.keys / "private")
        yaml_map = ", ".join(f"'{k}': '{v}'" for k, v in endpoints().items())
        self.env = {
            **os.environ,
            "QTS_RUNTIME__VAR_DIR": str(root / "var"),
            "QTS_RUNTIME__CURVE_DIR": str(self.keys),
            "QTS_RUNTIME__ENDPOINTS": "{" + yaml_map + "}",
            "QTS_RUNTIME__FAILSAFE_MS": str(FAILSAFE_MS),
            "LOG_LEVEL": "INFO",
            "STRATEGY_SCOPE": "pulse",
            "QTS_STRATEGY__PULSE_EVERY": "3",
            "QTS_OBSERVER__RATE_HZ": "300",
            "QTS_METRICS__PORT": "0",
            # the supervisor's own guardrails halt on a cut longer than these, on purpose (an
            # operator resumes); this test shows the fail-safe alone, which thaws by itself
            "QTS_GUARDRAILS__HEARTBEAT_LOSS_MS": "600000",
            "QTS_GUARDRAILS__STALE_MD_MS": "600000",
        }

    def start(self) -> None:
        for name in HOSTS[self.ns]:
            log = (self.root / f"{name}.log").open("wb")
            with log:
                self.procs[name] = subprocess.Popen(
                    ["ip", "netns", "exec", self.ns, sys.executable, "-m", f"services.{name}"],
                    cwd=REPO,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def python(self, script: str, *args: str, timeout: float = 60.0) -> Any:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c", script, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{self.ns}: {proc.stderr.strip().splitlines()[-1:]}")
        return json.loads(proc.stdout)

    def call(self, service: str, command: str, args: dict[str, Any] | None = None) -> Any:
        """A ctl request from this host, as qts-ctl would make it (CURVE with the ctl key)."""
        return self.python(PROBE, service, command, json.dumps(args or {}))

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
            for p in sorted(self.root.glob("*.log"))
        )


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Host]]:
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("multihost")
    curve.generate(root / "keys")  # `qts-ctl keys generate`, then copied to each host
    made: list[Host] = []
    try:
        ip("netns", "add", EXCHANGE)
        ip("netns", "add", OFFICE)
        ip("link", "add", VETH_EX, "type", "veth", "peer", "name", VETH_OF)
        for ns, dev in ((EXCHANGE, VETH_EX), (OFFICE, VETH_OF)):
            ip("link", "set", dev, "netns", ns)
            ip("-n", ns, "addr", "add", f"{IP[ns]}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")  # the supervisor's metrics on 127.0.0.1
        made = [Host(ns, root / ns, root / "keys") for ns in (OFFICE, EXCHANGE)]
        for host in made:
            host.start()
        yield {h.ns: h for h in made}
    finally:
        for host in made:
            host.stop()
        ip("netns", "del", EXCHANGE, check=False)  # takes its end of the veth pair with it
        ip("netns", "del", OFFICE, check=False)
        ip("link", "del", VETH_EX, check=False)  # only if set-up failed before moving it


def last_order_ns(host: Host) -> int:
    orders = host.call("execution", "orders", {"limit": 1})["orders"]
    return int(orders[0]["created_ns"]) if orders else 0


def test_trades_across_hosts_freezes_on_a_cut_link_and_recovers(hosts: dict[str, Host]) -> None:
    ex, of = hosts[EXCHANGE], hosts[OFFICE]

    def all_alive() -> bool:
        services = of.call("supervisor", "status")["services"]
        return all(services.get(n, {}).get("alive") for n in (*HOSTS[EXCHANGE], *HOSTS[OFFICE]))

    try:
        eventually(all_alive, timeout=90, interval=1.0, message="every service heard")
        # trading: orders made on the exchange host, their fills in the office's portfolio
        eventually(
            lambda: of.call("portfolio", "positions")["positions"],
            timeout=60,
            interval=1.0,
            message="fills reach the office's portfolio",
        )
        assert of.call("execution", "fills")["fills"]  # the operator's view, across the link

        # cut the link: the exchange host hears no supervisor
        t_cut = time.time_ns()
        ip("-n", EXCHANGE, "link", "set", VETH_EX, "down")
        seq_at_cut = ex.call("observer", "stats")["seq"]
        time.sleep(3 * FAILSAFE_MS / 1000)
        frozen_last = last_order_ns(ex)
        time.sleep(2 * FAILSAFE_MS / 1000)
        assert last_order_ns(ex) == frozen_last, "an order went out while the link was down"
        assert ex.call("observer", "stats")["seq"] > seq_at_cut + 100  # market data still flows
        freeze_ms = (frozen_last - t_cut) / 1e6
        print(f"\nlast order {freeze_ms:.0f} ms after the cut (fail-safe {FAILSAFE_MS} ms)")
        assert freeze_ms <= FAILSAFE_MS + MARGIN_MS

        # put it back: the supervisor is heard again and orders resume by themselves
        ip("-n", EXCHANGE, "link", "set", VETH_EX, "up")
        t_up = time.time_ns()
        eventually(
            lambda: last_order_ns(ex) > t_up,
            timeout=60,
            interval=0.5,
            message="orders resume after the link returns",
        )
        print(f"first order {(last_order_ns(ex) - t_up) / 1e6:.0f} ms after the link came back")
        assert of.call("supervisor", "status")["state"] == "ACTIVE"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{ex.logs()}\n{of.logs()}") from None


def test_a_client_without_a_known_key_is_refused(hosts: dict[str, Host]) -> None:
    """From the exchange host to the office's supervisor: no keys -> the CURVE server refuses
    the NULL handshake; a made-up key -> ZAP refuses it; the operator's key -> served."""
    out = hosts[EXCHANGE].python(INTRUDER)
    # a NULL client against a CURVE server: a protocol error, or the server hanging up first
    assert out.pop("unkeyed") in ("protocol", "no_detail"), out
    assert out == {"unknown_key": "auth", "operator_key": "succeeded", "ping": "ready"}, out
    refused = (hosts[OFFICE].root / "supervisor.log").read_text()
    assert "CURVE client refused" in refused
