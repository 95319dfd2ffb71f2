"""Online backups of the SQLite stores and the state files, and putting them back.

A service that owns a SQLite database (execution's journal, the venue's book) backs it up while
it runs: a thread of its own opens a second, read-only connection and copies the database with
SQLite's backup API (`Connection.backup`) in steps of `backup.pages` pages with a sleep between
them. The loop only queues a request and collects the answer on a timer, so it never waits on
the disk. In WAL mode the copying connection is a reader and never blocks the writer; a commit
from the writer between two steps makes SQLite restart the copy, so after `backup.max_restarts`
restarts the rest is copied in one step (one read snapshot, still not blocking the writer).

Each backup lands in `<backup dir>/<KST date>/<HHMMSS>/` and is verified before it counts: the
copy passes `PRAGMA integrity_check`, and `manifest.<service>.json` lists every file with its
size and sha256 (and facts such as the journal's last event seq). When services back up (a
schedule, the end of day, the ctl command `backup`): services/runtime/backup_schedule.py.
`restore()` is `qts-ctl restore`'s work.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.runtime.calendar import KST
from services.runtime.settings import BackupSettings, Settings
from services.runtime.statefile import atomic_write

MANIFEST_PREFIX = "manifest."
REPLACED_DIR = "replaced"  # restore() moves the files it replaces here, under the backup dir


class BackupError(Exception):
    """A backup or restore could not be made or verified; the message says which file and why."""


@dataclass(frozen=True)
class Sources:
    """What one service backs up, as paths relative to the var dir.

    databases: SQLite files, copied online with the backup API; facts: name -> SQL that
    returns one integer, run on the verified copy and written into the manifest.
    files: glob patterns of plain files (JSON state, broker ledgers), copied as they are: each
    is written by atomic rename or append-only, so a copy is never torn."""

    databases: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    facts: dict[str, str] = field(default_factory=dict)


def backup_root(settings: Settings) -> Path:
    d = settings.backup.dir
    return d if d.is_absolute() else settings.runtime.var_path / d


def slot_dir(root: Path, when: dt.datetime) -> Path:
    local = when.astimezone(KST)
    return root / local.strftime("%Y-%m-%d") / local.strftime("%H%M%S")


# ---------------------------------------------------------------------------------- copying
class _TooBusy(Exception):
    pass


class _Stopped(Exception):
    pass


def backup_sqlite(
    src: Path,
    dst: Path,
    pages: int = 256,
    sleep_s: float = 0.002,
    max_restarts: int = 3,
    stop: threading.Event | None = None,
) -> dict[str, int]:
    """Copy the live database `src` into `dst` (replaced atomically once verified).

    Returns {"steps", "restarts", "pages", "single_step"}. Raises BackupError if the copy
    fails its integrity check."""
    if not src.exists():
        raise BackupError(f"{src}: no such database")
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    stats = {"steps": 0, "restarts": 0, "pages": 0, "single_step": 0}
    last_remaining = [-1]

    def progress(status: int, remaining: int, total: int) -> None:
        stats["steps"] += 1
        stats["pages"] = total
        if last_remaining[0] >= 0 and remaining > last_remaining[0]:
            # the writer committed between two steps: SQLite started the copy over
            stats["restarts"] += 1
            if stats["restarts"] > max_restarts:
                raise _TooBusy
        last_remaining[0] = remaining
        if stop is not None and stop.is_set():
            raise _Stopped
        if remaining > 0 and sleep_s > 0:
            time.sleep(sleep_s)  # on the backup thread: lets the writer commit in between

    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=5.0)
    try:
        target = sqlite3.connect(tmp)
        try:
            try:
                source.backup(target, pages=max(pages, 1), progress=progress)
            except _TooBusy:
                # one read snapshot for the whole copy: in WAL mode the writer goes on
                stats["single_step"] = 1
                source.backup(target, pages=-1)
            # a self-contained file: no -wal next to the copy when it is opened later
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    except _Stopped:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"{src}: backup stopped (service shutting down)") from None
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"{src}: backup failed: {exc}") from exc
    finally:
        source.close()
    check = integrity(tmp)
    if check != "ok":
        tmp.unlink(missing_ok=True)
        raise BackupError(f"{src}: the copy fails integrity_check: {check}")
    _fsync_file(tmp)
    os.replace(tmp, dst)
    return stats


def integrity(path: Path) -> str:
    """PRAGMA integrity_check on a database file, read-only: "ok" or SQLite's complaint."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("PRAGMA integrity_check").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return "; ".join(str(r[0]) for r in rows) or "no answer"


def copy_file(src: Path, dst: Path) -> None:
    """tmp file, fsync, rename: the destination is either absent or whole."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dst)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _facts(path: Path, facts: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for name, sql in facts.items():
            try:
                row = db.execute(sql).fetchone()
            except sqlite3.Error as exc:
                raise BackupError(f"{path.name}: fact {name!r} ({sql}) failed: {exc}") from exc
            out[name] = int(row[0] or 0) if row else 0
    finally:
        db.close()
    return out


def make_backup(
    service: str,
    var_dir: Path,
    dest: Path,
    sources: Sources,
    cfg: BackupSettings,
    reason: str,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Back up `sources` (relative to var_dir) into dest and write manifest.<service>.json
    last, so a directory with a manifest holds verified files. Returns the manifest."""
    t0 = time.monotonic()
    created_ns = time.time_ns()
    files: list[dict[str, Any]] = []
    facts: dict[str, int] = {}
    for rel in sources.databases:
        src = var_dir / rel
        dst = dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        stats = backup_sqlite(
            src, dst, cfg.pages, cfg.step_sleep_ms / 1000.0, cfg.max_restarts, stop
        )
        facts.update(_facts(dst, sources.facts) if sources.facts else {})
        files.append(_entry(rel, dst, sqlite=True) | {"integrity": "ok", **stats})
    for pattern in sources.files:
        for name in sorted(glob.glob(str(var_dir / pattern))):
            src = Path(name)
            if not src.is_file():
                continue
            rel = src.relative_to(var_dir).as_posix()
            dst = dest / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                copy_file(src, dst)
            except FileNotFoundError:
                continue  # replaced or removed between the listing and the copy
            files.append(_entry(rel, dst, sqlite=False))
    manifest = {
        "service": service,
        "reason": reason,
        "created": dt.datetime.fromtimestamp(created_ns / 1e9, KST).isoformat(),
        "created_ns": created_ns,
        "duration_ms": round((time.monotonic() - t0) * 1000, 1),
        "files": files,
        "facts": facts,
    }
    atomic_write(dest / f"{MANIFEST_PREFIX}{service}.json", json.dumps(manifest, indent=1).encode())
    return manifest


def _entry(rel: str, path: Path, sqlite: bool) -> dict[str, Any]:
    return {"path": rel, "size": path.stat().st_size, "sha256": sha256(path), "sqlite": sqlite}


# ---------------------------------------------------------------------------------- reading back
def read_manifests(backup_dir: Path) -> list[dict[str, Any]]:
    """Every manifest in a backup directory; BackupError if there is none or one is unreadable."""
    if not backup_dir.is_dir():
        raise BackupError(f"{backup_dir}: not a directory")
    paths = sorted(backup_dir.glob(f"{MANIFEST_PREFIX}*.json"))
    if not paths:
        raise BackupError(f"{backup_dir}: no manifest.*.json: not a backup (or not a finished one)")
    out = []
    for p in paths:
        try:
            m = json.loads(p.read_text())
            if not isinstance(m.get("files"), list):
                raise ValueError("no file list")
        except (OSError, ValueError) as exc:
            raise BackupError(f"{p}: unreadable manifest: {exc}") from exc
        out.append(m)
    return out


def verify(backup_dir: Path) -> list[dict[str, Any]]:
    """Check every file a manifest lists: present, same size and sha256, databases pass
    integrity_check; and every path stays inside the var dir. Returns the file entries."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for m in read_manifests(backup_dir):
        for e in m["files"]:
            rel = str(e.get("path", ""))
            parts = Path(rel).parts
            if not rel or Path(rel).is_absolute() or ".." in parts or parts[0] == REPLACED_DIR:
                raise BackupError(f"manifest.{m.get('service')}: path {rel!r} leaves the var dir")
            if rel in seen:
                raise BackupError(f"{rel}: listed by two manifests")
            seen.add(rel)
            path = backup_dir / rel
            if not path.is_file():
                raise BackupError(f"{rel}: listed in the manifest, missing from {backup_dir}")
            if path.stat().st_size != e.get("size") or sha256(path) != e.get("sha256"):
                raise BackupError(f"{rel}: size or sha256 differs from the manifest (damaged)")
            if e.get("sqlite") and (check := integrity(path)) != "ok":
                raise BackupError(f"{rel}: integrity_check: {check}")
            entries.append(e)
    return entries


def restore(
    backup_dir: Path, var_dir: Path, replaced_root: Path, require: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Put a verified backup back under var_dir. Only with every service stopped (the caller,
    qts-ctl restore, checks). The files replaced (and a database's -wal/-shm, which belong to
    the replaced database and would corrupt the restored one) are moved to
    replaced_root/<KST time>/ first; each file is then renamed into place whole."""
    for service in require:
        if not (backup_dir / f"{MANIFEST_PREFIX}{service}.json").exists():
            raise BackupError(f"{backup_dir}: no {MANIFEST_PREFIX}{service}.json: {service}'s copy "
                              "is not in this backup (failed or unfinished)")  # fmt: skip
    entries = verify(backup_dir)
    stamp = dt.datetime.now(KST).strftime("%Y-%m-%dT%H%M%S")
    aside = replaced_root / stamp
    n = 1
    while aside.exists():
        n += 1
        aside = replaced_root / f"{stamp}-{n}"
    moved: list[str] = []
    for e in entries:
        target = var_dir / e["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        for extra in ("", "-wal", "-shm", "-journal") if e["sqlite"] else ("",):
            old = target.with_name(target.name + extra)
            if old.exists():
                dest = aside / (e["path"] + extra)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(old, dest)
                moved.append(e["path"] + extra)
        tmp = target.with_name(f".{target.name}.restore")
        copy_file(backup_dir / e["path"], tmp)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    return {
        "restored": [e["path"] for e in entries],
        "from": str(backup_dir),
        "replaced_to": str(aside) if moved else None,
        "replaced": moved,
    }


# ---------------------------------------------------------------------------------- retention
def list_backups(root: Path) -> list[Path]:
    """Backup directories (<date>/<HHMMSS...>), oldest first."""
    out: list[Path] = []
    for day in sorted(root.glob("????-??-??")):
        if day.is_dir():
            out.extend(sorted(p for p in day.iterdir() if p.is_dir() and p.name[:6].isdigit()))
    return out


def _is_close(backup: Path) -> bool:
    for path in backup.glob(f"{MANIFEST_PREFIX}*.json"):
        try:
            if json.loads(path.read_text()).get("reason") == "close":
                return True
        except (OSError, ValueError):
            pass
    return False


def prune(root: Path, keep_count: int, keep_days: int, today: dt.date) -> list[Path]:
    """Keep the newest keep_count backups and, for each of the last keep_days days, its
    end-of-day backup (else its last one); remove the rest. Returns what was removed."""
    backups = list_backups(root)
    keep = set(backups[-keep_count:])
    oldest = today - dt.timedelta(days=keep_days - 1)
    day_backup: dict[str, Path] = {}
    for b in backups:
        if b.parent.name not in day_backup or not _is_close(day_backup[b.parent.name]):
            day_backup[b.parent.name] = b
    for day, b in day_backup.items():
        if dt.date.fromisoformat(day) >= oldest:
            keep.add(b)
    removed = [b for b in backups if b not in keep]
    for b in removed:
        shutil.rmtree(b, ignore_errors=True)  # another service may be pruning the same
    for day_dir in {b.parent for b in removed}:
        try:
            day_dir.rmdir()
        except OSError:
            pass  # not empty (or gone)
    return removed
