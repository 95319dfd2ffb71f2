"""The performance process: counts, PnL, drawdown and latency, read by `qts-ctl pnl` and bench,
and the end-of-day report (`report`; by itself after the close).

Counts are rebuilt from the execution journal on start (events_since), so a restart loses
nothing but the equity curve of snapshots it did not see. The report's files are written by a
thread so the loop keeps its heartbeats while matplotlib draws."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from protocol.codes import CtlCode
from protocol.messages import CtlReply, ExecEvent, PortfolioSnapshot
from services.performance.engine import KST, PerformanceEngine
from services.runtime import calendar
from services.runtime.client import ctl_address
from services.runtime.journal_sync import JournalSync, ctl_fetch
from services.runtime.log import logger
from services.runtime.service import DEFERRED, CommandError, Deferred, Service

SUMMARY_LOG_S = 10.0
AUTO_REPORT_CHECK_S = 30.0
DEFAULT_CLOSE = dt.time(15, 30)


def report_due(now: dt.datetime, close: dt.datetime | None, delay: dt.timedelta) -> bool:
    """The day's report is due `delay` after the close; never on a day without a session."""
    return close is not None and now >= close + delay


class _Writer:
    """One report being written off the loop, and who waits for it."""

    def __init__(self, date: dt.date, data: dict[str, Any], out_dir: Path) -> None:
        self.date = date
        self.out_dir = out_dir
        self.waiting: list[tuple[bytes, str]] = []
        self.paths: list[str] = []
        self.error = ""
        self.thread = threading.Thread(
            target=self._run, args=(data,), name=f"report-{date}", daemon=True
        )
        self.thread.start()

    def _run(self, data: dict[str, Any]) -> None:
        from services.performance.report import write_report  # matplotlib: import on first use

        try:
            self.paths = [str(p) for p in write_report(data, self.out_dir)]
        except Exception as exc:  # reported to the caller; the service carries on
            self.error = f"{type(exc).__name__}: {exc}"


class PerformanceService(Service):
    name = "performance"

    def setup(self) -> None:
        self.engine = PerformanceEngine(self.settings.account.initial_cash)
        rt = self.settings.runtime
        self.sync = JournalSync(
            ctl_fetch(ctl_address(rt.run_dir, "execution", rt.endpoints)), self.engine.on_exec
        )
        cfg = self.settings.performance
        self.report_root = (
            cfg.report_dir if cfg.report_dir.is_absolute() else rt.var_path / cfg.report_dir
        )
        self._writer: _Writer | None = None
        self._auto_done: dt.date | None = None
        self._calendar: calendar.KrxCalendar | None = None
        self.on(self.connect(zmq.SUB, "exec"), "exec", self.on_exec)
        self.on(self.connect(zmq.SUB, "portfolio"), "portfolio", self.on_portfolio)
        self.command("summary", self.cmd_summary)
        self.command("report", self.cmd_report)
        self.every(1.0, self._retry)
        self.every(SUMMARY_LOG_S, self._log_summary)
        self.every(0.1, self._report_progress)
        if cfg.report_after_close_s > 0:
            self.every(AUTO_REPORT_CHECK_S, self._auto_report)
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

    # ------------------------------------------------------------------------------ report
    def start_report(self, date: dt.date) -> _Writer:
        if self._writer is not None and self._writer.thread.is_alive():
            if self._writer.date == date:
                return self._writer
            raise CommandError(
                CtlCode.NOT_READY, f"the report of {self._writer.date} is being written"
            )
        try:
            data = self.engine.report_data(date)
        except KeyError:
            seen = ", ".join(d.isoformat() for d in sorted(self.engine.days)) or "none"
            raise CommandError(
                CtlCode.BAD_REQUEST, f"no trading data for {date} (days seen: {seen})"
            ) from None
        data["generated_ns"] = time.time_ns()
        self._writer = _Writer(date, data, self.report_root / date.isoformat())
        logger.info("writing the report of {} to {}", date, self._writer.out_dir)
        return self._writer

    def cmd_report(self, args: dict[str, Any]) -> Deferred | dict[str, Any]:
        """report {date?: YYYY-MM-DD}: write the day's report (today in KST by default) and
        answer with the files once they are written."""
        raw = args.get("date")
        try:
            date = dt.date.fromisoformat(raw) if raw else dt.datetime.now(KST).date()
        except (TypeError, ValueError):
            raise CommandError(
                CtlCode.BAD_REQUEST, f"date must be YYYY-MM-DD, got {raw!r}"
            ) from None
        if date not in self.engine.days:
            written = self.report_root / date.isoformat()
            if (written / "index.html").is_file():  # from before a restart: show what exists
                files = sorted(str(p) for p in written.iterdir() if not p.name.startswith("."))
                return {"date": date.isoformat(), "dir": str(written), "files": files}
        writer = self.start_report(date)
        writer.waiting.append((args["_identity"], args["_request_id"]))
        return DEFERRED

    def _report_progress(self) -> None:
        w = self._writer
        if w is None or w.thread.is_alive():
            return
        self._writer = None
        w.thread.join()
        if w.error:
            logger.error("the report of {} failed: {}", w.date, w.error)
        else:
            logger.info("report of {} written: {}", w.date, w.out_dir / "index.html")
        for identity, request_id in w.waiting:
            if w.error:
                rep = CtlReply(
                    request_id=request_id, ok=False, code=CtlCode.INTERNAL, reason=w.error
                )
            else:
                data = {"date": w.date.isoformat(), "dir": str(w.out_dir), "files": w.paths}
                rep = CtlReply(request_id=request_id, ok=True, code=CtlCode.OK, data=data)
            self.reply(identity, rep)

    def _close_time(self, day: dt.date) -> dt.datetime | None:
        """Today's close on the KRX calendar (None on a closed day); 15:30 without it."""
        if self._calendar is None:
            try:
                self._calendar = calendar.KrxCalendar.load(day.year - 1, day.year + 1)
            except Exception as exc:
                logger.warning("no KRX calendar ({}): the report follows a 15:30 close", exc)
                return dt.datetime.combine(day, DEFAULT_CLOSE, KST)
        bounds = self._calendar.session_bounds(day)
        return bounds[1] if bounds else None

    def _auto_report(self) -> None:
        now = dt.datetime.now(KST)
        day = now.date()
        if self._auto_done == day or day not in self.engine.days:
            return
        delay = dt.timedelta(seconds=self.settings.performance.report_after_close_s)
        if not report_due(now, self._close_time(day), delay):
            return
        try:
            self.start_report(day)
        except CommandError as exc:
            logger.warning("end-of-day report not started: {}", exc.reason)
            return
        self._auto_done = day

    def teardown(self) -> None:
        if self._writer is not None:  # a half-written report is worse than a slower stop
            self._writer.thread.join(timeout=30)
