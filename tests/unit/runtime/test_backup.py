"""Online backups and restore (services/runtime/backup.py), on real files, without sockets."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.codes import CtlCode
from protocol.messages import CtlReply
from services.runtime import backup as bk
from services.runtime import backup_schedule as sched
from services.runtime.calendar import KST, KrxCalendar
from services.runtime.service import DEFERRED, CommandError
from services.runtime.settings import BackupSettings, ConfigError, Settings, load_settings
from tests.kit import eventually

FACTS = {"last_seq": "SELECT coalesce(max(seq), 0) FROM events", "rows": "SELECT count(*) FROM t"}


def make_db(path: Path, rows: int = 0) -> sqlite3.Connection:
    """A WAL database like the journal: table t and an events table written together."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)")
    db.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, t_id INTEGER)")
    for _ in range(rows):
        write_pair(db)
    return db


def write_pair(db: sqlite3.Connection) -> None:
    """One transaction: a row of t and the event that reports it (a copy has both or neither)."""
    db.execute("BEGIN")
    cur = db.execute("INSERT INTO t (pad) VALUES (randomblob(3000))")
    db.execute("INSERT INTO events (t_id) VALUES (?)", (cur.lastrowid,))
    db.execute("COMMIT")


def count(path: Path, sql: str = "SELECT count(*) FROM t") -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


Stop = Callable[[], None]


@pytest.fixture
def writer() -> Iterator[Callable[[sqlite3.Connection], Stop]]:
    """writer(db): a thread committing a pair every millisecond; call what it returns (or end
    the test) to stop and join it."""
    stops: list[Stop] = []

    def start(db: sqlite3.Connection) -> Stop:
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                write_pair(db)
                time.sleep(0.001)

        t = threading.Thread(target=run, daemon=True)
        t.start()

        def halt() -> None:
            stop.set()
            t.join()

        stops.append(halt)
        return halt

    yield start
    for halt in stops:
        halt()


# ---------------------------------------------------------------------------------- copying
def test_backup_while_a_writer_commits_then_copy_is_consistent_and_self_contained(
    tmp_path: Path, writer: Callable[[sqlite3.Connection], Stop]
) -> None:
    db = make_db(tmp_path / "live.db", rows=200)
    stop = writer(db)
    before = count(tmp_path / "live.db")
    stats = bk.backup_sqlite(tmp_path / "live.db", tmp_path / "copy.db", pages=8, sleep_s=0.001)
    copied = count(tmp_path / "copy.db")
    after = count(tmp_path / "live.db")
    stop()
    db.close()
    assert bk.integrity(tmp_path / "copy.db") == "ok"
    assert before <= copied <= after
    # every t row has its event: one transaction is in the copy whole or not at all
    assert count(tmp_path / "copy.db", "SELECT count(*) FROM events") == copied
    assert stats["steps"] >= 2 and stats["pages"] > 8
    assert not (tmp_path / "copy.db-wal").exists()
    assert not (tmp_path / ".copy.db.tmp").exists()


def test_backup_restarted_by_commits_then_finishes_in_one_step(
    tmp_path: Path, writer: Callable[[sqlite3.Connection], Stop]
) -> None:
    db = make_db(tmp_path / "live.db", rows=100)
    stop = writer(db)
    # 1 page a step, 20 ms apart: the writer (every 1 ms) commits between any two steps
    stats = bk.backup_sqlite(
        tmp_path / "live.db", tmp_path / "copy.db", pages=1, sleep_s=0.02, max_restarts=1
    )
    stop()
    db.close()
    assert stats["restarts"] == 2 and stats["single_step"] == 1
    assert bk.integrity(tmp_path / "copy.db") == "ok"


def test_backup_of_missing_database_then_clear_error(tmp_path: Path) -> None:
    with pytest.raises(bk.BackupError, match="no such database"):
        bk.backup_sqlite(tmp_path / "absent.db", tmp_path / "copy.db")


def test_integrity_of_a_damaged_file_names_the_problem(tmp_path: Path) -> None:
    make_db(tmp_path / "a.db", rows=50).close()
    data = bytearray((tmp_path / "a.db").read_bytes())
    data[4096 * 2 : 4096 * 2 + 64] = b"\xff" * 64
    (tmp_path / "a.db").write_bytes(bytes(data))
    assert bk.integrity(tmp_path / "a.db") != "ok"


def sources_in(var: Path) -> bk.Sources:
    make_db(var / "state" / "journal.db", rows=30).close()
    (var / "state" / "trading_state.json").write_text('{"state": "HALTED", "epoch": 7}')
    (var / "state" / "strategy_swing.json").write_text("{}")
    (var / "broker" / "kis").mkdir(parents=True)
    (var / "broker" / "kis" / "ledger-2026-11-25-k.jsonl").write_text('{"o": 1}\n')
    (var / "broker" / "kis" / "token-k.json").write_text('{"secret": "x"}')
    return bk.Sources(
        databases=("state/journal.db",),
        files=("state/*.json", "broker/*/ledger-*.jsonl"),
        facts=FACTS,
    )


def test_make_backup_writes_verified_files_and_a_manifest(tmp_path: Path) -> None:
    var, dest = tmp_path / "var", tmp_path / "var" / "backup" / "2026-11-25" / "101500"
    sources = sources_in(var)
    m = bk.make_backup("execution", var, dest, sources, BackupSettings(), "ctl")
    paths = [f["path"] for f in m["files"]]
    assert paths == [
        "state/journal.db",
        "state/strategy_swing.json",
        "state/trading_state.json",
        "broker/kis/ledger-2026-11-25-k.jsonl",
    ]  # never the token cache
    assert m["facts"] == {"last_seq": 30, "rows": 30}
    on_disk = json.loads((dest / "manifest.execution.json").read_text())
    assert on_disk == m
    for f in m["files"]:
        assert (dest / f["path"]).stat().st_size == f["size"]
        assert bk.sha256(dest / f["path"]) == f["sha256"]
    assert m["files"][0]["integrity"] == "ok"
    assert [e["path"] for e in bk.verify(dest)] == paths


def test_a_fact_that_fails_then_backup_error_names_it(tmp_path: Path) -> None:
    make_db(tmp_path / "var" / "state" / "journal.db").close()
    sources = bk.Sources(databases=("state/journal.db",), facts={"x": "SELECT nope FROM nowhere"})
    with pytest.raises(bk.BackupError, match="fact 'x'"):
        bk.make_backup("execution", tmp_path / "var", tmp_path / "b", sources, BackupSettings(), "")


# ---------------------------------------------------------------------------------- restore
def test_restore_puts_files_back_and_moves_the_replaced_ones_aside(tmp_path: Path) -> None:
    var = tmp_path / "var"
    dest = var / "backup" / "2026-11-25" / "101500"
    bk.make_backup("execution", var, dest, sources_in(var), BackupSettings(), "ctl")
    # after the backup: more rows (left in the WAL by an unclean stop), a changed state file
    db = make_db(var / "state" / "journal.db", rows=5)
    db.execute("PRAGMA wal_autocheckpoint=0")
    write_pair(db)
    (var / "state" / "trading_state.json").write_text('{"state": "ACTIVE", "epoch": 9}')
    wal = (var / "state" / "journal.db-wal").read_bytes()
    db.close()
    (var / "state" / "journal.db-wal").write_bytes(wal)  # a killed writer's WAL
    # a file the backup does not have is left alone
    (var / "state" / "strategy_scalp.json").write_text("{}")

    out = bk.restore(dest, var, var / "backup" / "replaced")

    assert count(var / "state" / "journal.db") == 30
    assert not (var / "state" / "journal.db-wal").exists()
    assert json.loads((var / "state" / "trading_state.json").read_text())["epoch"] == 7
    assert (var / "state" / "strategy_scalp.json").exists()
    aside = Path(out["replaced_to"])
    assert aside.parent == var / "backup" / "replaced"
    assert "state/journal.db-wal" in out["replaced"]
    assert json.loads((aside / "state" / "trading_state.json").read_text())["epoch"] == 9
    assert set(out["restored"]) == {f["path"] for f in bk.verify(dest)}
    # the restored journal opens in WAL mode again and takes writes
    make_db(var / "state" / "journal.db", rows=1).close()
    assert count(var / "state" / "journal.db") == 31


def test_restore_of_a_damaged_backup_then_refused_and_nothing_changed(tmp_path: Path) -> None:
    var = tmp_path / "var"
    dest = var / "backup" / "2026-11-25" / "101500"
    bk.make_backup("execution", var, dest, sources_in(var), BackupSettings(), "ctl")
    (dest / "state" / "trading_state.json").write_text('{"state": "ACTIVE", "epoch": 1}')
    (var / "state" / "trading_state.json").write_text("now")
    with pytest.raises(bk.BackupError, match=r"state/trading_state\.json: size or sha256"):
        bk.restore(dest, var, var / "backup" / "replaced")
    assert (var / "state" / "trading_state.json").read_text() == "now"
    assert not (var / "backup" / "replaced").exists()


def test_restore_without_a_required_services_manifest_then_refused(tmp_path: Path) -> None:
    var = tmp_path / "var"
    make_db(var / "state" / "venue.db", rows=2).close()
    dest = var / "backup" / "2026-11-25" / "101500"
    venue = bk.Sources(databases=("state/venue.db",))
    bk.make_backup("venue", var, dest, venue, BackupSettings(), "schedule")
    with pytest.raises(bk.BackupError, match=r"no manifest\.execution\.json"):
        bk.restore(dest, var, var / "backup" / "replaced", require=("execution",))
    assert bk.restore(dest, var, var / "backup" / "replaced")["restored"] == ["state/venue.db"]


def test_restore_of_a_manifest_path_leaving_var_then_refused(tmp_path: Path) -> None:
    dest = tmp_path / "b"
    dest.mkdir()
    (dest / "x").write_text("x")
    entry = {"path": "../x", "size": 1, "sha256": bk.sha256(dest / "x"), "sqlite": False}
    (dest / "manifest.execution.json").write_text(json.dumps({"files": [entry]}))
    with pytest.raises(bk.BackupError, match="leaves the var dir"):
        bk.verify(dest)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "not a directory"),
        (lambda d: d.mkdir(), "no manifest"),
        (lambda d: (d.mkdir(), (d / "manifest.venue.json").write_text("{")), "unreadable"),
    ],
)
def test_restore_of_something_not_a_backup_then_clear_error(
    tmp_path: Path, setup: Callable[[Path], Any], message: str
) -> None:
    setup(tmp_path / "b")
    with pytest.raises(bk.BackupError, match=message):
        bk.restore(tmp_path / "b", tmp_path / "var", tmp_path / "replaced")


# ---------------------------------------------------------------------------------- retention
def test_prune_keeps_the_newest_and_each_recent_days_close(tmp_path: Path) -> None:
    slots = {
        "2026-10-01": ["154000"],  # older than keep_days: removed
        "2026-11-23": ["100000", "154000"],
        "2026-11-24": ["100000", "120000", "154000", "233000"],
        "2026-11-25": ["090000", "093000", "100000"],
    }
    for day, names in slots.items():
        for name in names:
            (tmp_path / day / name).mkdir(parents=True)
    (tmp_path / "2026-11-24" / "154000" / "manifest.venue.json").write_text('{"reason": "close"}')
    (tmp_path / "replaced" / "x").mkdir(parents=True)  # not a backup: never pruned
    removed = bk.prune(tmp_path, keep_count=3, keep_days=3, today=dt.date(2026, 11, 25))
    left = [f"{p.parent.name}/{p.name}" for p in bk.list_backups(tmp_path)]
    assert left == [
        "2026-11-23/154000",  # no end-of-day backup that day: its last
        "2026-11-24/154000",  # the end-of-day one, not the later 233000
        *(f"2026-11-25/{n}" for n in slots["2026-11-25"]),
    ]
    assert len(removed) == 5
    assert not (tmp_path / "2026-10-01").exists()
    assert (tmp_path / "replaced" / "x").exists()


def test_venue_schedule_without_executions_copy_then_skipped_but_ctl_goes_on(
    tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    make_db(var / "state" / "venue.db", rows=1).close()
    settings = Settings.model_validate(
        {"runtime": {"var_dir": str(var)}, "backup": {"wait_s": 0.2, "at_close": False}}
    )
    venue = bk.Sources(databases=("state/venue.db",))
    worker = sched.BackupWorker("venue", settings, venue, after=("execution",))
    slot = bk.backup_root(settings) / "2026-11-25" / "100000"
    worker._run(sched._Job("schedule", slot, wait_for=("execution",)))
    assert worker.results.empty() and not slot.exists()
    worker._run(sched._Job("ctl", slot, wait_for=("execution",)))
    assert worker.results.get_nowait().manifest is not None
    assert (slot / "manifest.venue.json").exists()


# ---------------------------------------------------------------------------------- schedule
def test_next_slot_is_aligned_to_kst_midnight() -> None:
    now = dt.datetime(2026, 11, 25, 10, 17, 3, tzinfo=KST)
    assert sched.next_slot(now, 1800) == dt.datetime(2026, 11, 25, 10, 30, tzinfo=KST)
    assert sched.next_slot(now.astimezone(dt.UTC), 1800) == dt.datetime(
        2026, 11, 25, 10, 30, tzinfo=KST
    )
    late = dt.datetime(2026, 11, 25, 23, 59, tzinfo=KST)
    assert sched.next_slot(late, 1800) == dt.datetime(2026, 11, 26, 0, 0, tzinfo=KST)


def calendar_with(day: dt.date, closes: dt.datetime) -> KrxCalendar:
    return KrxCalendar({day: (closes - dt.timedelta(hours=6, minutes=30), closes)})


def test_close_due_after_the_calendar_close_and_none_on_a_holiday() -> None:
    day = dt.date(2026, 11, 25)
    cal = calendar_with(day, dt.datetime(2026, 11, 25, 15, 30, tzinfo=KST))
    assert sched.close_due(cal, day, 600) == dt.datetime(2026, 11, 25, 15, 40, tzinfo=KST)
    assert sched.close_due(cal, dt.date(2026, 11, 26), 600) is None


def test_backup_settings_validate_with_the_key_path() -> None:
    with pytest.raises(ConfigError, match=r"backup\.pages"):
        load_settings(env={"QTS_BACKUP__PAGES": "0"})
    assert load_settings(env={"QTS_BACKUP__INTERVAL_S": "60"}).backup.interval_s == 60


# ---------------------------------------------------------------------------------- the loop's side
class FakeService:
    """What Backups needs from a Service: commands, timers, counters and replies."""

    name = "execution"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.commands: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.timers: list[Callable[[], None]] = []
        self.counters: dict[str, int] = {}
        self.replies: list[tuple[bytes, CtlReply]] = []

    def command(self, name: str, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.commands[name] = fn

    def every(self, seconds: float, fn: Callable[[], None]) -> None:
        self.timers.append(fn)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def reply(self, identity: bytes, rep: CtlReply) -> None:
        self.replies.append((identity, rep))

    def tick(self) -> None:
        for fn in self.timers:
            fn()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Callable[..., tuple[FakeService, sched.Backups]]]:
    made: list[sched.Backups] = []

    def make(
        calendar: KrxCalendar | None = None, **backup: Any
    ) -> tuple[FakeService, sched.Backups]:
        var = tmp_path / "var"
        make_db(var / "state" / "journal.db", rows=3).close()
        settings = Settings.model_validate(
            {"runtime": {"var_dir": str(var)}, "backup": {"at_close": False, **backup}}
        )
        fake = FakeService(settings)
        sources = bk.Sources(databases=("state/journal.db",), facts=FACTS)
        b = sched.Backups(fake, sources, calendar=calendar)  # type: ignore[arg-type]
        made.append(b)
        return fake, b

    yield make
    for b in made:
        b.close()


def answered(fake: FakeService) -> list[tuple[bytes, CtlReply]]:
    fake.tick()
    return fake.replies


def test_backup_command_answers_with_the_manifest_once_verified(
    service: Callable[..., tuple[FakeService, sched.Backups]],
) -> None:
    fake, b = service(interval_s=0)
    out = fake.commands["backup"]({"_identity": b"id", "_request_id": "r1"})
    assert out is DEFERRED
    (identity, rep), *_ = eventually(lambda: answered(fake), timeout=10)
    assert identity == b"id" and rep.ok and rep.request_id == "r1"
    assert rep.data["facts"] == {"last_seq": 3, "rows": 3}
    assert Path(rep.data["dir"]).parent.parent == b.root
    assert (Path(rep.data["dir"]) / "manifest.execution.json").exists()
    assert fake.counters["backups"] == 1 and fake.counters["backup_last_unix_s"] > 0


def test_backup_command_into_a_dir_outside_the_backup_dir_then_bad_request(
    service: Callable[..., tuple[FakeService, sched.Backups]], tmp_path: Path
) -> None:
    fake, _ = service(interval_s=0)
    for bad in (str(tmp_path / "elsewhere"), "../../state"):
        with pytest.raises(CommandError) as exc:
            fake.commands["backup"]({"dir": bad, "_identity": b"i", "_request_id": "r"})
        assert exc.value.code == CtlCode.BAD_REQUEST and "inside" in exc.value.reason


def test_backup_that_fails_then_error_reply_and_counted(
    service: Callable[..., tuple[FakeService, sched.Backups]],
) -> None:
    fake, b = service(interval_s=0)
    (b.root).mkdir(parents=True)
    blocker = b.root / "2026-11-25"
    blocker.write_text("a file where the backup's directory should go")
    fake.commands["backup"]({"dir": "2026-11-25/101500", "_identity": b"i", "_request_id": "r"})
    (_, rep), *_ = eventually(lambda: answered(fake), timeout=10)
    assert not rep.ok and rep.code == CtlCode.INTERNAL and "backup failed" in rep.reason
    assert fake.counters["backup_failures"] == 1


def test_schedule_backs_up_on_its_slots_and_skips_when_nothing_changed(
    service: Callable[..., tuple[FakeService, sched.Backups]], tmp_path: Path
) -> None:
    fake, b = service(interval_s=1)
    eventually(lambda: fake.tick() or fake.counters["backups"] >= 1, timeout=10)
    time.sleep(2.5)  # two or three more slots pass with the database unchanged
    fake.tick()
    assert fake.counters["backups"] == 1
    make_db(tmp_path / "var" / "state" / "journal.db", rows=1).close()
    eventually(lambda: fake.tick() or fake.counters["backups"] >= 2, timeout=10)
    manifests = sorted(b.root.glob("*/*/manifest.execution.json"))
    assert [json.loads(p.read_text())["reason"] for p in manifests] == ["schedule", "schedule"]
    assert json.loads(manifests[-1].read_text())["facts"]["rows"] == 4


def test_end_of_day_backup_catches_up_after_the_close(
    service: Callable[..., tuple[FakeService, sched.Backups]],
) -> None:
    # today's session closed at midnight (a calendar made up so that it is always past)
    closes = dt.datetime.now(KST).replace(hour=0, minute=0, second=0, microsecond=0)
    fake, b = service(calendar_with(closes.date(), closes), interval_s=0, at_close=True,
                      after_close_s=0)  # fmt: skip
    eventually(lambda: fake.tick() or fake.counters["backups"] >= 1, timeout=10)
    slot = bk.slot_dir(b.root, closes)
    assert slot.name == "000000"
    assert json.loads((slot / "manifest.execution.json").read_text())["reason"] == "close"


def test_after_the_close_backup_the_next_is_the_next_session_days(tmp_path: Path) -> None:
    friday = dt.date(2026, 11, 27)
    monday = dt.date(2026, 11, 30)
    cal = KrxCalendar(
        {
            d: (
                dt.datetime.combine(d, dt.time(9), KST),
                dt.datetime.combine(d, dt.time(15, 30), KST),
            )
            for d in (friday, monday)
        }
    )
    settings = Settings.model_validate({"runtime": {"var_dir": str(tmp_path)}})
    worker = sched.BackupWorker("execution", settings, bk.Sources(), calendar=cal)
    before = dt.datetime(2026, 11, 27, 12, 0, tzinfo=KST)
    after = dt.datetime(2026, 11, 27, 15, 40, 0, 1, tzinfo=KST)
    assert worker._close_due(before) == dt.datetime(2026, 11, 27, 15, 40, tzinfo=KST)
    # started after Friday's time with no backup of it: catch up; once made, Monday's
    assert worker._close_due(after) == dt.datetime(2026, 11, 27, 15, 40, tzinfo=KST)
    monday_due = dt.datetime(2026, 11, 30, 15, 40, tzinfo=KST)
    assert worker._close_due(after, catch_up=False) == monday_due
    done = bk.slot_dir(bk.backup_root(settings), dt.datetime(2026, 11, 27, 15, 40, tzinfo=KST))
    done.mkdir(parents=True)
    (done / "manifest.execution.json").write_text("{}")
    assert worker._close_due(after) == monday_due
