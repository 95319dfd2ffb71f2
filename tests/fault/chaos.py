"""Chaos: SIGKILL every service in turn while `pulse` trades, let supervisord restart it, then
prove nothing was lost or doubled.

After the kills the system is halted (so the books stand still) and drained, and then:
- every order the venue received maps to exactly one journal row, by the venue's order number,
  and no journal row had to be adopted (the journal knew every order before it was sent);
- no intent produced two orders (intent_id is unique in the journal, and the venue has exactly
  as many orders as the journal has rows with a venue order number);
- every venue fill is in the journal once, and nothing else is;
- portfolio's positions and cash equal the venue's, to the share and to the won;
- execution has no order whose outcome is still unknown.

`make chaos ROUNDS=N` runs N rounds (each kills every service once, in random order) and prints
the figures; tests/fault/test_chaos.py runs one round in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from protocol.endpoints import SERVICES
from services.ctl.supervisord import Supervisord
from tests.kit import System, eventually

CONFIG = {
    "STRATEGY_SCOPE": "pulse",
    "QTS_STRATEGY__PULSE_EVERY": "2",
    "QTS_OBSERVER__RATE_HZ": "600",
    "QTS_EXECUTION__RECONCILE_INTERVAL_S": "2",  # exercise reconciliation while trading
    "LOG_LEVEL": "INFO",
}


def pid_of(sup: Supervisord, service: str) -> int:
    return int(sup.call("supervisor.getProcessInfo", f"qts:{service}")["pid"])


def all_ready(system: System) -> bool:
    services = system.call("supervisor", "status", timeout=1.0)["services"]
    return all(
        services.get(n, {}).get("alive") and services[n].get("status") == "ready"
        for n in SERVICES
        if n != "supervisor"
    )


def venue_orders(system: System) -> list[dict[str, Any]]:
    return list(system.call("venue", "orders")["orders"])


def kill_and_recover(
    system: System, sup: Supervisord, service: str, rng: random.Random
) -> dict[str, Any]:
    time.sleep(rng.uniform(0.3, 1.5))  # a random moment in the middle of trading
    before = len(venue_orders(system))
    old = pid_of(sup, service)
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    new = eventually(
        lambda: (p := pid_of(sup, service)) not in (0, old) and p,
        timeout=30,
        message=f"supervisord restarts {service}",
    )
    # the new process itself must be ready (the old one's last heartbeat still looks alive)
    eventually(
        lambda: (
            system.call(service, "ping", timeout=1.0)["pid"] == new
            and system.call(service, "ping", timeout=1.0)["status"] == "ready"
        ),
        timeout=30,
        message=f"{service} ready again",
    )
    eventually(lambda: all_ready(system), timeout=30, message=f"all ready after {service}")
    back = time.monotonic() - t0
    eventually(
        lambda: len(venue_orders(system)) >= before + 2,
        timeout=30,
        message=f"trading resumes after killing {service}",
    )
    return {"service": service, "recovered_s": round(back, 2)}


def check_invariants(system: System) -> dict[str, Any]:
    journal = system.call("execution", "orders", {"limit": 10_000_000})["orders"]
    fills = system.call("execution", "fills")["fills"]
    venue = venue_orders(system)
    by_no = Counter(o["broker_order_no"] for o in journal if o["broker_order_no"])
    doubled = [no for no, n in by_no.items() if n > 1]
    assert not doubled, f"venue orders journaled twice: {doubled[:5]}"
    venue_nos = {o["order_no"] for o in venue}
    unknown_to_journal = venue_nos - set(by_no)
    assert not unknown_to_journal, (
        f"venue orders missing from the journal: {sorted(unknown_to_journal)[:5]}"
    )
    adopted = [o for o in journal if o["client_order_id"].startswith("ADOPT-")]
    assert not adopted, f"orders adopted at reconcile (journal lost them): {adopted[:3]}"
    intents = Counter(o["intent_id"] for o in journal)
    assert max(intents.values()) == 1
    assert len(venue) == len(by_no), "an intent became more than one venue order"
    unknown = [o for o in journal if o["status"] in ("PENDING", "SENT")]
    assert not unknown, f"orders with an unknown outcome left: {unknown[:3]}"
    journal_fill_keys = Counter((f["broker_order_no"], f["fill_id"]) for f in fills)
    assert max(journal_fill_keys.values(), default=1) == 1
    filled_by_order: Counter[str] = Counter()
    for f in fills:
        filled_by_order[f["broker_order_no"]] += f["qty"]
    for o in venue:
        assert filled_by_order.get(o["order_no"], 0) == o["filled"], (
            f"venue order {o['order_no']} filled {o['filled']}, journal has "
            f"{filled_by_order.get(o['order_no'], 0)}"
        )
    balance = system.call("venue", "balance")
    positions = eventually(
        lambda: _portfolio_caught_up(system, len(fills)),
        timeout=15,
        message="portfolio applied every fill",
    )
    account = {
        p["symbol"]: p["qty"] for p in positions["positions"] if p["strategy"] == "" and p["qty"]
    }
    assert account == balance["holdings"], (account, balance["holdings"])
    assert positions["cash"] == balance["cash"], (positions["cash"], balance["cash"])
    return {
        "venue_orders": len(venue),
        "journal_rows": len(journal),
        "fills": len(fills),
        "denied": sum(1 for o in journal if o["status"] == "DENIED"),
        "cash": balance["cash"],
        "holdings": balance["holdings"],
    }


def _portfolio_caught_up(system: System, n_fills: int) -> dict[str, Any] | None:
    positions = system.call("portfolio", "positions")
    last = system.call("execution", "events_since", {"seq": 1 << 62})["last_seq"]
    return positions if positions.get("exec_seq", 0) >= last else None


def run(root: Path, rounds: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    system = System(root, **CONFIG)
    results: list[dict[str, Any]] = []
    try:
        system.start()
        sup = Supervisord(system.conf)
        eventually(lambda: len(venue_orders(system)) >= 5, timeout=30, message="trading")
        for _ in range(rounds):
            order = list(SERVICES)
            rng.shuffle(order)
            for service in order:
                results.append(kill_and_recover(system, sup, service, rng))
        system.ctl("halt", "--reason", "chaos run over")
        time.sleep(0.5)
        eventually(
            lambda: not system.call("execution", "orders", {"open_only": True})["orders"],
            timeout=20,
            message="no open orders after halt",
        )
        figures = check_invariants(system)
    finally:
        system.stop()
    return {"kills": results, **figures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qts-chaos-") as tmp:
        result = run(Path(tmp), args.rounds, args.seed)
    for kill in result.pop("kills"):
        print(f"killed {kill['service']:<12} back and ready in {kill['recovered_s']:>5.2f} s")
    print(
        f"seed {args.seed}: {result['venue_orders']} venue orders = journal rows with a venue "
        f"number, {result['fills']} fills, {result['denied']} denied intents; "
        f"portfolio == venue: cash {result['cash']:,} KRW, holdings {result['holdings']}"
    )
    print("no lost order, no duplicate order, positions equal to the venue's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
