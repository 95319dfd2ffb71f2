"""Online backup of a busy journal: how long the copy takes and how long it holds the writer.

A thread plays execution's loop: every millisecond it journals one order (PENDING, SENT,
ACCEPTED: three commits, the real Journal) and records how long that took and how late it
woke. Meanwhile services/runtime/backup.py copies the journal on a second thread of the same
process (as in execution: same GIL) with the default settings. Prints figures; asserts nothing.

    .venv/bin/python -m tests.bench.backup [ORDERS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from protocol.enums import Side
from protocol.messages import SubmitOrder, Trace
from services.execution.journal import Journal
from services.runtime import backup as bk
from services.runtime.settings import BackupSettings


def journal_one(j: Journal, n: int) -> None:
    coid = f"c{n}"
    order = SubmitOrder(
        client_order_id=coid,
        intent_id=f"i{n}",
        strategy="bench",
        symbol="005930",
        side=Side.BUY,
        qty=10,
        price=70_000,
        intent_ns=time.time_ns(),
    )
    now = time.time_ns()
    j.record_pending(order, now)
    j.mark_sent(coid, now)
    j.record_accepted(coid, f"{n:010d}", now, Trace())


class Loop(threading.Thread):
    """Opens the journal, fills it with `orders` orders, then journals one every ms."""

    def __init__(self, path: Path, orders: int) -> None:
        super().__init__(daemon=True)
        self.path, self.n = path, orders
        self.samples: list[tuple[float, float, float]] = []  # (t, commit ms, late ms)
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        self.j = Journal(self.path)
        for n in range(self.n):
            journal_one(self.j, n)
        self.ready.set()
        due = time.monotonic()
        while not self.stop.is_set():
            t0 = time.monotonic()
            journal_one(self.j, self.n)
            self.n += 1
            t1 = time.monotonic()
            self.samples.append((t0, (t1 - t0) * 1000, max(0.0, (t0 - due) * 1000)))
            due = t1 + 0.001
            time.sleep(0.001)
        self.j.db.close()

    def between(self, a: float, b: float) -> tuple[list[float], list[float]]:
        rows = [s for s in self.samples if a <= s[0] <= b]
        return [r[1] for r in rows], [r[2] for r in rows]


def show(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return f"{name:<34} n={len(ms):>5} p50={q[49]:6.2f} p99={q[98]:6.2f} max={max(ms):7.2f} ms"


def main() -> None:
    orders = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
    cfg = BackupSettings()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.db"
        loop = Loop(path, orders)
        loop.start()
        loop.ready.wait()
        size_mb = (path.stat().st_size + Path(f"{path}-wal").stat().st_size) / 1e6
        time.sleep(2.0)
        t0 = time.monotonic()
        stats = bk.backup_sqlite(
            path, Path(tmp) / "copy.db", cfg.pages, cfg.step_sleep_ms / 1000, cfg.max_restarts
        )
        t1 = time.monotonic()
        digest = bk.sha256(Path(tmp) / "copy.db")
        t2 = time.monotonic()
        time.sleep(0.5)
        loop.stop.set()
        loop.join()
        print(f"journal: {orders:,} orders, {size_mb:.1f} MB; settings pages={cfg.pages} "
              f"sleep={cfg.step_sleep_ms} ms max_restarts={cfg.max_restarts}")  # fmt: skip
        print(f"backup: {(t1 - t0) * 1000:.0f} ms (copy + integrity_check), sha256 "
              f"{(t2 - t1) * 1000:.0f} ms; {stats}; {digest[:12]}")  # fmt: skip
        base_c, base_l = loop.between(0, t0)
        during_c, during_l = loop.between(t0, t2)
        print(show("writer commit x3, no backup", base_c))
        print(show("writer commit x3, during backup", during_c))
        print(show("writer lateness, no backup", base_l))
        print(show("writer lateness, during backup", during_l))


if __name__ == "__main__":
    main()
