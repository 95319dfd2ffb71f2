"""The whole system trading through the real KIS adapter against the fake KIS (issue 8's "done
when"): `qts-ctl up --broker kis` with the paper hosts pointed at the fake and the secrets in
the environment, the market replayed from the checked-in sample session (execution refuses
orders outside the KRX session by the wall clock unless the observer replays, and a replay's
session follows its recording, so this runs at any hour). The fake fills every order in two
parts by encrypted H0STCNI9 notices, every third only its first part. Execution is SIGKILLed
mid-run and restarted by supervisord: fills made while it was down come back by
reconciliation, nothing is re-sent or booked twice. The halt then cancels what is open
through order-rvsecncl; positions equal the fake's balance and the fake saw every order
exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.execution.adapters.kis import wire
from tests.brokers.kis_server import FakeKis
from tests.kit import REPO, System, eventually

SAMPLE = REPO / "tests" / "data" / "sample_session.qtsrec.gz"
OPEN = ("PENDING", "SENT", "ACCEPTED", "PARTIALLY_FILLED")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeKis]:
    server = FakeKis(mode="paper", auto_fill=True, keep_open_every=3, cash=10_000_000_000)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(fake: FakeKis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    sys_ = System(
        tmp_path_factory.mktemp("qts-kis"),
        **fake.env(),
        STRATEGY_SCOPE="pulse",
        QTS_STRATEGY__PULSE_EVERY="20",
        QTS_STRATEGY__PULSE_QTY="4",
        QTS_BROKER__MODE="paper",
        QTS_SESSION__CLOCK="exchange",
        QTS_OBSERVER__SOURCE="replay",
        QTS_OBSERVER__REPLAY_PATH=str(SAMPLE),
        QTS_OBSERVER__REPLAY_SPEED="100",
        QTS_BROKER__KIS__PAPER_REST_URL=fake.rest_url,
        QTS_BROKER__KIS__PAPER_WS_URL=fake.ws_url,
        QTS_BROKER__KIS__PAPER_RATE_PER_S="50",
        QTS_BROKER__KIS__WS_BACKOFF_MIN_MS="100",
    )
    sys_.start("--broker", "kis")
    yield sys_
    sys_.stop()


def exec_orders(system: System) -> list[dict[str, Any]]:
    data = system.call("execution", "orders", {"limit": 100_000})
    return data["orders"] if isinstance(data, dict) else data


def exec_fills(system: System) -> list[dict[str, Any]]:
    data = system.call("execution", "fills")
    return data["fills"] if isinstance(data, dict) else data


def supervisorctl(system: System, *args: str) -> str:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(system.conf), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def order_posts(fake: FakeKis) -> int:
    return fake.stats.requests.get(wire.ORDER_CASH_PATH, 0)


@pytest.mark.slow
def test_orders_fill_and_cancel_through_kis_and_positions_match(
    system: System, fake: FakeKis
) -> None:
    eventually(
        lambda: (
            sum(1 for o in exec_orders(system) if o["status"] == "FILLED") >= 3
            and any(o["status"] == "PARTIALLY_FILLED" for o in exec_orders(system))
        ),
        timeout=90,
        message="3 orders filled and one partly filled through KIS",
    )
    assert fake.stats.subscribes >= 1 and fake.stats.tokens_issued == 1

    # SIGKILL execution mid-run: supervisord restarts it (autorestart=unexpected); it keeps
    # the token (the file cache), reconciles, and trading goes on
    pid = int(supervisorctl(system, "pid", "qts:execution").strip())
    before = fake.fill_counts.copy()
    os.kill(pid, signal.SIGKILL)
    # a fill while execution is down: its notice reaches no one (or the new session), the
    # restarted process's reconcile books it once either way
    with fake.lock:
        part = next(o for o in fake.orders.values() if not o.orig and 0 < o.filled < o.qty)
    fake.fill(part.odno, 1, part.price)
    eventually(
        lambda: supervisorctl(system, "pid", "qts:execution").strip() not in ("0", str(pid)),
        timeout=30,
        message="execution restarted by supervisord",
    )
    eventually(
        lambda: system.ctl_json("status")["services"]["execution"]["alive"],
        timeout=30,
        message="execution alive again",
    )
    posts = len(fake.orders)
    eventually(
        lambda: (
            sum(fake.fill_counts.values()) > sum(before.values()) + 2 and len(fake.orders) > posts
        ),
        timeout=60,
        message="new orders and fills after the restart",
    )
    assert fake.stats.tokens_issued == 1  # the restarted process used the cached token

    # the halt cancels what is open at KIS (order-rvsecncl); the notices close them
    system.ctl_json("halt", "--reason", "kis system test")
    eventually(
        lambda: not [o for o in exec_orders(system) if o["status"] in OPEN],
        timeout=30,
        message="nothing open after the halt",
    )
    rows = exec_orders(system)
    canceled = [o for o in rows if o["status"] == "CANCELED"]
    assert canceled and all(0 < o["filled_qty"] < o["qty"] for o in canceled)
    cancel_rows = [o for o in fake.orders.values() if o.orig]
    assert sorted(o.orig for o in cancel_rows) == sorted(o["broker_order_no"] for o in canceled)
    assert all(fake.order(o["broker_order_no"]).remaining == 0 for o in canceled)
    assert fake.stats.requests.get(wire.ORDER_RVSECNCL_PATH, 0) == len(canceled)

    # every order reached KIS once; every fill KIS made was booked once
    placed = [o for o in fake.orders.values() if not o.orig]
    assert order_posts(fake) == len(placed) == len([o for o in rows if o["broker_order_no"]])
    assert sorted(o["broker_order_no"] for o in rows if o["broker_order_no"]) == sorted(
        o.odno for o in placed
    )
    fills = exec_fills(system)
    assert len({f["fill_id"] for f in fills}) == len(fills)
    by_order: Counter[str] = Counter()
    for f in fills:
        by_order[f["broker_order_no"]] += f["qty"]
    assert dict(by_order) == {o.odno: o.filled for o in placed if o.filled}
    net: Counter[str] = Counter()
    for f in fills:
        net[f["symbol"]] += f["qty"] if f["side"] == "BUY" else -f["qty"]
    broker = {s: q for s, q in fake.holdings.items() if q}
    assert {s: q for s, q in net.items() if q} == broker

    def portfolio_matches() -> bool:
        positions = system.call("portfolio", "positions")
        account = {p["symbol"]: p["qty"] for p in positions["positions"] if p["strategy"] == ""}
        return {s: q for s, q in account.items() if q} == broker

    eventually(portfolio_matches, timeout=10, message="portfolio positions = KIS balance")
    assert system.ctl_json("status")["services"]["execution"]["alive"]
