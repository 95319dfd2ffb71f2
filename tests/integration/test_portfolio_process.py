"""The real portfolio process against a fake execution (journal ROUTER + exec PUB) and md PUB."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import zmq
from PIL import Image

from protocol import codec
from protocol.endpoints import ctl_name, endpoint
from protocol.enums import Side
from protocol.messages import CtlReply, CtlRequest, OrderFilled, PortfolioSnapshot, Trade
from services.performance.report import CHARTS
from services.runtime import client
from tests.kit import System, eventually

KST = ZoneInfo("Asia/Seoul")
SYM = "005930"


def fill(seq: int, strategy: str, side: Side, qty: int, price: int) -> OrderFilled:
    ns = int(dt.datetime(2026, 1, 5, 10, tzinfo=KST).timestamp()) * 1_000_000_000
    return OrderFilled(
        seq=seq, fill_id=f"B{seq}-1", client_order_id=f"C{seq}", broker_order_no=f"B{seq}",
        strategy=strategy, symbol=SYM, side=side, qty=qty, price=price, leaves_qty=0,
        exch_ns=ns, ts_ns=ns,
    )  # fmt: skip


class FakeJournal(threading.Thread):
    """execution's ctl ROUTER answering events_since from an in-memory journal."""

    def __init__(self, address: str, events: list[OrderFilled]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.events = events
        self.done = threading.Event()
        self.requests = 0
        self.ready = threading.Event()

    def run(self) -> None:
        sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.address)
        self.ready.set()
        decode = msgspec.msgpack.Decoder(CtlRequest).decode
        while not self.done.is_set():
            if not sock.poll(50):
                continue
            ident, *_, payload = sock.recv_multipart()
            req = decode(payload)
            self.requests += 1
            after = int(req.args.get("seq", 0))
            data = {
                "events": msgspec.to_builtins([e for e in self.events if e.seq > after]),
                "last_seq": max(e.seq for e in self.events),
            }
            rep = CtlReply(request_id=req.request_id, ok=True, code="OK", data=data)
            sock.send_multipart([ident, b"", codec.encode(rep)])
        sock.close(0)


def sub_snapshot(sub: zmq.Socket[Any], seq: int) -> PortfolioSnapshot | None:
    """The snapshot numbered `seq` if it is among those waiting on `sub`."""
    while sub.poll(200):
        snap = msgspec.msgpack.decode(sub.recv(), type=PortfolioSnapshot)
        if snap.seq == seq:
            return snap
    return None


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def peers(run_dir: Path) -> Iterator[tuple[FakeJournal, Any, Any]]:
    run_dir.mkdir(parents=True)
    journal = FakeJournal(
        endpoint(run_dir, ctl_name("execution")),
        [fill(1, "a", Side.BUY, 10, 50_000), fill(2, "b", Side.BUY, 10, 52_000)],
    )
    journal.start()
    journal.ready.wait(2)
    ctx: zmq.Context[Any] = zmq.Context.instance()
    exec_pub, md_pub = ctx.socket(zmq.PUB), ctx.socket(zmq.PUB)
    for sock, name in ((exec_pub, "exec"), (md_pub, "marks")):
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint(run_dir, name))
    yield journal, exec_pub, md_pub
    journal.done.set()
    journal.join(2)
    exec_pub.close(0)
    md_pub.close(0)


def test_portfolio_recovers_books_live_fills_marks_and_survives_bad_frames(
    tmp_path: Path, run_dir: Path, peers: tuple[FakeJournal, Any, Any]
) -> None:
    journal, exec_pub, md_pub = peers
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.portfolio"],
        env={**os.environ, "QTS_RUNTIME__VAR_DIR": str(tmp_path)},
        cwd="/work/main",
    )
    ctl = endpoint(run_dir, ctl_name("portfolio"))

    def call(command: str) -> Any:
        return client.call(ctl, command, timeout=1.0)

    try:
        # recovery from the journal: two fills
        eventually(lambda: call("positions")["exec_seq"] == 2, message="recovered seq 2")
        assert call("ping")["status"] == "ready"

        # a third fill live (republished until heard: the seq makes repeats harmless)
        live = codec.encode(fill(3, "a", Side.SELL, 5, 53_000))
        eventually(
            lambda: exec_pub.send(live) or call("positions")["exec_seq"] == 3, message="live fill"
        )
        mark = codec.encode(Trade(stream=1, seq=1, symbol=SYM, exch_ns=0, price=54_000, qty=1))
        eventually(
            lambda: md_pub.send(mark) or call("positions")["positions"][0]["last_price"] == 54_000,
            message="mark",
        )

        # a gap: seq 4 is only in the journal, 5 arrives live -> portfolio fetches 4
        journal.events.append(fill(4, "b", Side.BUY, 1, 54_000))
        journal.events.append(fill(5, "b", Side.BUY, 1, 54_000))
        gap = codec.encode(journal.events[-1])
        eventually(lambda: exec_pub.send(gap) or call("positions")["exec_seq"] == 5, message="gap")

        pnl = call("pnl")
        # by hand (1.5 bp truncated; 2026 tax 0.05% + 0.15% each truncated, settles 2026-01-07;
        # initial 100,000,000):
        # a: buy 10@50,000 fee 75; sell 5@53,000 = 265,000 fee 39 tax 132 + 397 -> realized 15,000
        # b: buy 10@52,000 fee 78; buy 1@54,000 twice fee 8 each
        assert pnl["by_strategy"]["a"] == {
            "realized": 15_000, "unrealized": 20_000, "gross": 35_000, "fees": 114,
            "taxes": 529, "costs": 643, "net": 34_357, "bought": 500_000, "sold": 265_000,
        }  # fmt: skip
        assert pnl["by_strategy"]["b"] == {
            "realized": 0, "unrealized": 20_000, "gross": 20_000, "fees": 94, "taxes": 0,
            "costs": 94, "net": 19_906, "bought": 628_000, "sold": 0,
        }  # fmt: skip
        # account pools a and b: 20 @ 1,020,000 -> sell 5 removes 255,000 -> realized 10,000
        cash = 100_000_000 - 500_075 - 520_078 + 265_000 - 39 - 529 - 2 * 54_008
        assert pnl["cash"] == cash
        assert pnl["realized"] == 10_000 and pnl["unrealized"] == 45_000
        assert pnl["fees"] == 208 and pnl["taxes"] == 529
        assert pnl["equity"] == cash + 17 * 54_000
        assert pnl["net"] == pnl["equity"] - 100_000_000
        # every fill settled long ago: the deposit is the same on D+0..D+2, all of it usable
        assert pnl["balance"] == {
            "d0": cash, "d1": cash, "d2": cash, "reserved": 0, "buying_power": cash,
            "withdrawable": cash,
        }  # fmt: skip
        rows = {(r["strategy"], r["symbol"]): r for r in call("positions")["positions"]}
        assert rows[("", SYM)]["qty"] == 17 and rows[("", SYM)]["sellable"] == 17
        assert rows[("", SYM)]["avg_price"] == (1_020_000 - 255_000 + 108_000) // 17

        # a snapshot on request reaches subscribers
        sub: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(endpoint(run_dir, "portfolio"))
        try:
            asked = eventually(lambda: sub_snapshot(sub, call("snapshot")["seq"]), message="snap")
            assert asked is not None and asked.exec_seq == 5 and asked.cash == cash
        finally:
            sub.close(0)

        # malformed frame on exec: counted, process alive
        eventually(
            lambda: (
                exec_pub.send(b"\xc1not msgpack")
                or call("ping")["counters"].get("bad_frames.exec", 0) >= 1
            ),
            message="bad frame counted",
        )
        assert call("positions")["exec_seq"] == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
    assert code == 0


def test_paper_session_then_report_pnl_equals_portfolio_and_venue_cash_to_the_won(
    tmp_path: Path,
) -> None:
    """A whole system on the paper venue: the pulse strategy trades a finite synthetic session;
    once the market data ends (marks frozen) and the journal is quiet, the report, the portfolio
    and the venue must tell the same story to the won."""
    system = System(
        tmp_path / "qts",
        STRATEGY_SCOPE="pulse",
        QTS_STRATEGY__PULSE_EVERY="3",
        QTS_OBSERVER__RATE_HZ="500",
        QTS_OBSERVER__MAX_EVENTS="2000",
    )
    system.start()
    try:
        eventually(
            lambda: system.call("observer", "ping")["status"] == "done", 60, message="md ends"
        )
        last = eventually(lambda: quiet_last_seq(system), 30, message="journal quiet")
        eventually(
            lambda: system.call("portfolio", "positions")["exec_seq"] == last, message="booked"
        )
        pnl = system.call("portfolio", "pnl")
        # performance hears the portfolio's periodic snapshot, which now shows the final book
        eventually(
            lambda: system.call("performance", "summary")["pnl"]["net"] == pnl["net"],
            message="performance has the last snapshot",
        )
        report = system.ctl_json("report", timeout=180)

        data = json.loads((Path(report["dir"]) / "report.json").read_text())
        fills = system.call("execution", "fills")
        fills = fills["fills"] if isinstance(fills, dict) else fills
        venue = system.call("venue", "balance")
        marks = {
            r["symbol"]: r["last_price"]
            for r in system.call("portfolio", "positions")["positions"]
            if r["strategy"] == ""
        }
        initial = pnl["initial_cash"]
        venue_value = sum(q * marks[s] for s, q in venue["holdings"].items() if q)

        assert len(fills) > 10 and data["total"]["fills"] == len(fills)
        total = data["total"]["pnl"]
        for key in ("realized", "unrealized", "fees", "taxes", "net", "cash", "equity"):
            assert total[key] == pnl[key], key
        assert venue["cash"] == pnl["cash"] == total["cash"]
        assert total["net"] == venue["cash"] + venue_value - initial
        assert total["taxes"] > 0 and total["fees"] > 0
        strategies = data["by_strategy"]
        assert sum(s["pnl"]["net"] for s in strategies.values()) == total["net"]
        assert data["latency_us"]["tick_to_ack"]["count"] > 0
        for name in ("index.html", "report.json", *CHARTS):
            assert (Path(report["dir"]) / name).stat().st_size > 0
        for name in CHARTS:
            with Image.open(Path(report["dir"]) / name) as img:
                img.verify()
        assert f"report of {data['date']}" in system.ctl("report").stdout
        unknown = system.ctl("report", "--date", "2020-01-02", check=False)
        assert unknown.returncode != 0 and "no trading data for 2020-01-02" in unknown.stderr
        bad = system.ctl("report", "--date", "25/11/2026", check=False)
        assert bad.returncode != 0 and "BAD_REQUEST" in bad.stderr
        text = system.ctl("pnl").stdout
        assert "profit factor" in text and "tick_to_ack" in text
    finally:
        system.stop()


def quiet_last_seq(system: System) -> int | None:
    """execution's last journal seq once it has not moved for a second."""
    first = system.call("execution", "events_since", {"seq": 1 << 62})["last_seq"]
    time.sleep(1.0)
    again = system.call("execution", "events_since", {"seq": 1 << 62})["last_seq"]
    return again if again == first and again > 0 else None
