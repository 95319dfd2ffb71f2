"""When services back up, on a thread of their own: the schedule, the end of day and the
`backup` ctl command (the copying itself is services/runtime/backup.py).

The loop only queues a request and collects the answer on a 100 ms timer; the BackupWorker
thread waits for the next slot (`backup.interval_s`, aligned to KST midnight so execution and
the venue pick the same directory), the end-of-day time (`backup.after_close_s` after the KRX
close by the calendar) or a request, and makes the backup.
"""

from __future__ import annotations

import datetime as dt
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.codes import CtlCode
from protocol.messages import CtlReply
from services.runtime.backup import (
    MANIFEST_PREFIX,
    BackupError,
    Sources,
    backup_root,
    make_backup,
    prune,
    slot_dir,
)
from services.runtime.calendar import KST, KrxCalendar
from services.runtime.log import logger
from services.runtime.service import DEFERRED, CommandError, Deferred, Service
from services.runtime.settings import Settings


def next_slot(now: dt.datetime, interval_s: float) -> dt.datetime:
    """The first multiple of interval_s after KST midnight that is later than now: every
    service with the same interval picks the same instant, hence the same directory."""
    local = now.astimezone(KST)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    n = int((local - midnight).total_seconds() // interval_s) + 1
    return midnight + dt.timedelta(seconds=n * interval_s)


def close_due(calendar: KrxCalendar, day: dt.date, after_close_s: float) -> dt.datetime | None:
    """When the end-of-day backup of `day` is due; None if it is not a session day."""
    bounds = calendar.session_bounds(day)
    return bounds[1] + dt.timedelta(seconds=after_close_s) if bounds else None


@dataclass
class _Job:
    reason: str  # "ctl", "schedule", "close"
    dest: Path
    identity: bytes = b""
    request_id: str = ""
    wait_for: tuple[str, ...] = ()


@dataclass
class _Result:
    job: _Job
    manifest: dict[str, Any] | None
    error: str = ""


class BackupWorker(threading.Thread):
    """The backup thread: runs queued requests, and the scheduled and end-of-day backups."""

    def __init__(
        self,
        service: str,
        settings: Settings,
        sources: Sources,
        after: tuple[str, ...] = (),
        calendar: KrxCalendar | None = None,
    ) -> None:
        super().__init__(name=f"{service}-backup", daemon=True)
        self.service = service
        self.cfg = settings.backup
        self.extra_closures = tuple(settings.session.extra_closures)
        self.var_dir = settings.runtime.var_path
        self.root = backup_root(settings)
        self.sources = sources
        self.after = after  # services whose manifest a scheduled backup waits for (see wait_s)
        self.calendar = calendar
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.results: queue.Queue[_Result] = queue.Queue()
        self.stopping = threading.Event()
        self._signature: tuple[tuple[int, int], ...] | None = None

    def stop(self) -> None:
        self.stopping.set()
        self.jobs.put(None)

    def run(self) -> None:
        next_sched = self._next_sched()
        close_at = self._close_due(dt.datetime.now(KST))
        while not self.stopping.is_set():
            now = dt.datetime.now(KST)
            due = [t for t in (next_sched, close_at) if t is not None]
            wait = min((t - now).total_seconds() for t in due) if due else 3600.0
            try:
                job = self.jobs.get(timeout=min(max(wait, 0.0), 3600.0))
            except queue.Empty:
                job = None
            if self.stopping.is_set():
                return
            now = dt.datetime.now(KST)
            if job is None:
                if close_at is not None and now >= close_at:
                    dest = slot_dir(self.root, close_at)
                    close_at = self._close_due(now, catch_up=False)  # the next session day's
                    self._run(_Job("close", dest, wait_for=self.after))
                elif next_sched is not None and now >= next_sched:
                    dest = slot_dir(self.root, next_sched)
                    next_sched = self._next_sched()
                    # a service that follows another (the venue) copies whenever that one
                    # did, so the slot holds both; execution skips a slot with no change
                    if self.after or self._changed():
                        self._run(_Job("schedule", dest, wait_for=self.after))
                continue
            self._run(job)

    def _next_sched(self) -> dt.datetime | None:
        if not self.cfg.enabled or not self.cfg.interval_s:
            return None
        return next_slot(dt.datetime.now(KST), self.cfg.interval_s)

    def _close_due(self, now: dt.datetime, catch_up: bool = True) -> dt.datetime | None:
        """Today's end-of-day backup time (or the next session day's). A service started
        after today's time catches up if its manifest for today's close is not there."""
        if not self.cfg.enabled or not self.cfg.at_close:
            return None
        try:
            if self.calendar is None:
                year = now.year
                self.calendar = KrxCalendar.load(year - 1, year + 1, self.extra_closures)
            day = now.date()
            for _ in range(15):
                due = close_due(self.calendar, day, self.cfg.after_close_s)
                if due is not None:
                    done = slot_dir(self.root, due) / f"{MANIFEST_PREFIX}{self.service}.json"
                    if due > now or (catch_up and day == now.date() and not done.exists()):
                        return due
                day += dt.timedelta(days=1)
        except Exception as exc:  # no calendar: scheduled backups go on, end of day does not
            logger.error("backup: no end-of-day backups, the KRX calendar failed: {}", exc)
        return None

    def _signature_now(self) -> tuple[tuple[int, int], ...]:
        sig: list[tuple[int, int]] = []
        for rel in self.sources.databases:
            for extra in ("", "-wal"):
                try:
                    st = (self.var_dir / (rel + extra)).stat()
                except FileNotFoundError:
                    sig.append((0, 0))
                    continue
                # an empty -wal is as good as none (a reader, like our copy, may create it)
                sig.append((st.st_size, st.st_mtime_ns) if st.st_size else (0, 0))
        return tuple(sig)

    def _changed(self) -> bool:
        """Whether a database changed since the last backup began (a quiet night makes none)."""
        return self._signature_now() != self._signature

    def _run(self, job: _Job) -> None:
        if not self._wait_for(job) and job.reason == "schedule":
            # execution made no copy in this slot (its journal did not change, or it is down):
            # a book without the journal beside it is no backup to restore (qts-ctl refuses)
            logger.debug("backup: slot {} skipped, no copy from {}", job.dest, job.wait_for)
            return
        try:
            job.dest.mkdir(parents=True, exist_ok=True)
            sig = self._signature_now()  # before the copy: a write during it shows next time
            manifest = make_backup(
                self.service, self.var_dir, job.dest, self.sources, self.cfg, job.reason,
                self.stopping,
            )  # fmt: skip
            self._signature = sig
            prune(self.root, self.cfg.keep_count, self.cfg.keep_days, dt.datetime.now(KST).date())
            self.results.put(_Result(job, manifest))
        except (BackupError, OSError, sqlite3.Error) as exc:
            self.results.put(_Result(job, None, str(exc)))

    def _wait_for(self, job: _Job) -> bool:
        """Whether the services job.wait_for made their copy in job.dest, waiting up to
        backup.wait_s (less if a request arrives meanwhile). The paper venue's copy is taken
        after execution's journal: the venue may then know orders the journal does not
        (reconciliation adopts them), never the other way round."""
        deadline = time.monotonic() + self.cfg.wait_s
        for other in job.wait_for:
            done = job.dest / f"{MANIFEST_PREFIX}{other}.json"
            while not done.exists():
                if time.monotonic() >= deadline or not self.jobs.empty():
                    return False
                if self.stopping.wait(0.1):
                    return False
        return True


class Backups:
    """A service's backups, from its loop: the `backup` ctl command (answered once the copy
    is verified) and the results of scheduled runs, collected every 100 ms. Every copy is
    made on the BackupWorker thread."""

    def __init__(
        self,
        service: Service,
        sources: Sources,
        after: tuple[str, ...] = (),
        calendar: KrxCalendar | None = None,
    ) -> None:
        self.service = service
        self.root = backup_root(service.settings)
        self.worker = BackupWorker(service.name, service.settings, sources, after, calendar)
        service.command("backup", self.cmd_backup)
        service.every(0.1, self.poll)
        service.counters.update({"backups": 0, "backup_failures": 0, "backup_last_unix_s": 0})
        self.worker.start()

    def cmd_backup(self, args: dict[str, Any]) -> Deferred:
        """`backup {dir?}`: back up now into dir (under the backup directory; default: a new
        <KST date>/<HHMMSS>); the answer is the manifest."""
        raw = args.get("dir")
        dest = Path(raw) if raw else slot_dir(self.root, dt.datetime.now(KST))
        if not dest.is_absolute():
            dest = self.root / dest
        if self.root.resolve() not in dest.resolve().parents:
            raise CommandError(CtlCode.BAD_REQUEST, f"dir must be inside {self.root}, not {raw}")
        self.worker.jobs.put(_Job("ctl", dest, args["_identity"], args["_request_id"]))
        return DEFERRED

    def poll(self) -> None:
        while True:
            try:
                r = self.worker.results.get_nowait()
            except queue.Empty:
                return
            svc = self.service
            if r.manifest is not None:
                svc.count("backups")
                svc.counters["backup_last_unix_s"] = r.manifest["created_ns"] // 1_000_000_000
                logger.info(
                    "backup ({}) in {}: {} files, {} ms, {}",
                    r.job.reason,
                    r.job.dest,
                    len(r.manifest["files"]),
                    r.manifest["duration_ms"],
                    r.manifest["facts"] or "verified",
                )
            else:
                svc.count("backup_failures")
                logger.error("backup ({}) into {} failed: {}", r.job.reason, r.job.dest, r.error)
            if r.job.identity:
                rep = (
                    CtlReply(
                        request_id=r.job.request_id,
                        ok=True,
                        code=CtlCode.OK,
                        data={"dir": str(r.job.dest), **r.manifest},
                    )
                    if r.manifest is not None
                    else CtlReply(
                        request_id=r.job.request_id,
                        ok=False,
                        code=CtlCode.INTERNAL,
                        reason=f"backup failed: {r.error}",
                    )
                )
                svc.reply(r.job.identity, rep)

    def close(self) -> None:
        self.worker.stop()
        self.worker.join(timeout=10.0)
