"""/metrics from a real supervisor with every real service under supervisord, parsed with
prometheus-client's parser: every service up, messages and latency from the live system, PnL
from portfolio, the trading state following `qts-ctl halt`; the logs are JSON lines and
`qts-ctl logs` reads them. And the base service's side in a real process: its histograms and
per-stream message counts arrive with its heartbeat."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import zmq
from prometheus_client.parser import text_string_to_metric_families

from protocol import codec
from protocol.endpoints import endpoint
from protocol.enums import TradingState
from protocol.messages import Heartbeat, TradingStateUpdate
from services.runtime.histogram import BOUNDS_US, from_wire
from tests.kit import REPO, System, eventually

SERVICES = ("observer", "strategy", "risk", "execution", "portfolio", "performance", "venue")
TOKEN = "dashboard-T0KEN-5e4d3c2b"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def total(m: dict[str, Any], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for k, v in m.get(name, {}).items() if want <= set(k))


def test_metrics_from_a_live_system(make_system: Any) -> None:
    port = free_port()
    system: System = make_system(
        QTS_METRICS__PORT=str(port),
        QTS_RUNTIME__LOG_JSON="true",
        QTS_DASHBOARD_TOKEN=TOKEN,
    )
    system.start()

    def trading() -> Any:
        m = scrape(port)
        ready = all(m["qts_up"].get((("service", s),)) == 1.0 for s in (*SERVICES, "supervisor"))
        lat = total(m, "qts_stage_latency_seconds_count", service="supervisor", stage="broker")
        fetched = all(v == 1.0 for v in m.get("qts_dashboard_fetch_ok", {0: 0}).values())
        # orders come from the exec stream at once; broker requests from execution's next
        # heartbeat (100 ms) in the next published view (500 ms): wait for both
        sent = total(m, "qts_broker_requests_total", kind="order")
        if ready and lat > 0 and total(m, "qts_orders_total") > 0 and sent > 0 and fetched:
            return m
        return None

    m = eventually(trading, timeout=60, interval=0.5, message="a trading system in /metrics")
    assert m["qts_trading_state"][(("state", "ACTIVE"),)] == 1.0
    assert total(m, "qts_messages_total", service="strategy", stream="md") > 0
    assert total(m, "qts_messages_total", service="supervisor", stream="heartbeat") > 0
    assert total(m, "qts_broker_requests_total", kind="order") > 0
    for service in SERVICES:
        assert m["qts_heartbeat_age_seconds"][(("service", service),)] < 5
    # latency: cumulative buckets ending at the count
    labels = (("service", "supervisor"), ("stage", "tick_to_ack"))
    count = m["qts_stage_latency_seconds_count"][labels]
    assert m["qts_stage_latency_seconds_bucket"][(("le", "+Inf"), *labels)] == count
    assert m["qts_stage_latency_seconds_sum"][labels] > 0
    # PnL and equity from portfolio (the paper account starts with 100,000,000 KRW)
    assert "qts_equity_krw" in m and m["qts_equity_krw"][()] > 0
    assert {k[0][1] for k in m["qts_pnl_krw"]} >= {"realized", "unrealized", "net"}

    epoch = m["qts_trading_epoch"][()]
    system.ctl("halt", "--reason", "metrics test")

    def halted() -> Any:
        m = scrape(port)
        return m if m["qts_trading_state"][(("state", "HALTED"),)] == 1.0 else None

    m = eventually(halted, timeout=10, message="HALTED in /metrics")
    assert m["qts_trading_epoch"][()] == epoch + 1
    assert m["qts_trading_state"][(("state", "ACTIVE"),)] == 0.0

    # one JSON object a line, the token nowhere; qts-ctl logs reads the same file
    log = (system.var / "log" / "supervisor.log").read_text()
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    messages = [r["record"]["message"] for r in records]
    assert any(f"metrics and dashboard on http://127.0.0.1:{port}/" in t for t in messages)
    assert TOKEN not in log
    tail = system.ctl("logs", "supervisor", "-n", "3").stdout.splitlines()
    assert len(tail) == 3
    # the file's last lines when qts-ctl read it (the supervisor may have logged more since)
    assert "\n".join(tail) in (system.var / "log" / "supervisor.log").read_text()
    assert all(json.loads(line)["record"]["extra"]["service"] == "supervisor" for line in tail)


PROBE = """
import sys
from services.runtime.histogram import LatencyHistogram
from services.runtime.service import Service, main


class Probe(Service):
    name = "probe"

    def setup(self):
        self.histograms["probe_stage"] = LatencyHistogram()
        self.every(0.01, lambda: self.histograms["probe_stage"].observe_us(300))


sys.exit(main(Probe))
"""


def test_a_service_reports_histograms_and_messages_with_its_heartbeat(tmp_path: Path) -> None:
    """The base service's side, in a real process: a histogram registered in
    self.histograms and the frames it receives per stream arrive with each heartbeat."""
    run_dir = tmp_path / "var" / "run"
    run_dir.mkdir(parents=True)
    ctx: zmq.Context[Any] = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pub = ctx.socket(zmq.PUB)
    pull.bind(endpoint(run_dir, "heartbeat"))
    pub.bind(endpoint(run_dir, "control"))
    env = {**os.environ, "QTS_RUNTIME__VAR_DIR": str(tmp_path / "var")}
    proc = subprocess.Popen([sys.executable, "-c", PROBE], env=env, cwd=REPO)
    decode = codec.decoder("heartbeat").decode
    try:
        deadline = time.monotonic() + 20
        got: Heartbeat | None = None
        while time.monotonic() < deadline:
            now = time.time_ns()
            pub.send(
                codec.encode(
                    TradingStateUpdate(
                        state=TradingState.ACTIVE,
                        epoch=1,
                        reason="",
                        by="test",
                        changed_ns=now,
                        ts_ns=now,
                    )
                )
            )
            if pull.poll(50):
                hb = decode(pull.recv())
                wire = hb.histograms.get("probe_stage")
                if wire and hb.counters.get("msgs.control", 0) >= 3:
                    got = hb
                    break
        assert got is not None, "no heartbeat with the histogram and msgs.control within 20 s"
        cumulative, sum_us = from_wire(got.histograms["probe_stage"])
        assert cumulative[-1] > 0 and sum_us == 300 * cumulative[-1]
        assert cumulative[BOUNDS_US.index(250)] == 0  # 300 µs is above the 250 µs bound
        assert cumulative[BOUNDS_US.index(500)] == cumulative[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        pull.close(0)
        pub.close(0)
        ctx.term()
    assert proc.returncode == 0
