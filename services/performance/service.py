"""The performance process: counts, PnL, drawdown and latency, read by `qts-ctl pnl` and bench.

Counts are rebuilt from the execution journal on start (events_since), so a restart loses
nothing but the drawdown history of snapshots it did not see."""

from __future__ import annotations

from typing import Any

import zmq

from protocol.messages import ExecEvent, PortfolioSnapshot
from services.performance.engine import PerformanceEngine
from services.runtime.client import ctl_address
from services.runtime.journal_sync import JournalSync, ctl_fetch
from services.runtime.log import logger
from services.runtime.service import Service

SUMMARY_LOG_S = 10.0


class PerformanceService(Service):
    name = "performance"

    def setup(self) -> None:
        self.engine = PerformanceEngine()
        rt = self.settings.runtime
        self.sync = JournalSync(
            ctl_fetch(ctl_address(rt.run_dir, "execution", rt.endpoints)), self.engine.on_exec
        )
        self.on(self.connect(zmq.SUB, "exec"), "exec", self.on_exec)
        self.on(self.connect(zmq.SUB, "portfolio"), "portfolio", self.on_portfolio)
        self.command("summary", self.cmd_summary)
        self.every(1.0, self._retry)
        self.every(SUMMARY_LOG_S, self._log_summary)
        self._retry()
        # performance is never critical: it reports ready and keeps retrying in the background
        self.status = "ready"

    def on_exec(self, event: ExecEvent) -> None:
        # count at once even while catching up (the engine dedupes by seq), and let the sync
        # refetch anything a gap skipped
        self.engine.on_exec(event)
        gaps = self.sync.gaps
        self.sync.live(event)
        if self.sync.gaps != gaps:
            self.count("exec_gaps")

    def on_portfolio(self, snap: PortfolioSnapshot) -> None:
        self.engine.on_snapshot(snap)

    def _retry(self) -> None:
        if self.sync.synced:
            return
        if self.sync.catch_up():
            self.detail = ""
            logger.info("performance caught up with the journal at seq {}", self.sync.applied)
        else:
            self.detail = self.sync.error

    def _log_summary(self) -> None:
        s = self.engine.summary()
        lat = s["latency_us"]["tick_to_ack"]
        logger.info(
            "orders {} fills {} rejects {} denials {} cancels {} turnover {} net {} "
            "max_dd {} tick_to_ack p50/p99 {}/{} us (n={})",
            s["orders"],
            s["fills"],
            s["rejects"],
            sum(s["denials"].values()),
            s["cancels"],
            s["turnover"],
            s["pnl"]["net"],
            s["pnl"]["max_drawdown"],
            lat["p50"],
            lat["p99"],
            lat["count"],
        )

    def cmd_summary(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.engine.summary()
