"""SQLite state: WAL, migrations, records and versions, runs, the single-writer lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sync_service.errors import DatabaseError, LockHeldError
from sync_service.models.data_models import FileOperation, RunReport, SyncedFile
from sync_service.services.database_manager import MIGRATIONS, DatabaseManager
from sync_service.services.sync_lock import SyncLock
from sync_service.store.operations import Delivered, Outcome
from sync_service.utils.local_servers import REPO_ROOT


def synced(path: str, etag: str = "e1", permissions: str = "{}") -> SyncedFile:
    return SyncedFile(path, 3, etag, "2026-11-24T00:00:00Z", permissions)


def test_new_database_is_wal_with_a_busy_timeout_at_the_latest_schema(tmp_path: Path) -> None:
    db = DatabaseManager(tmp_path / "nested" / "sync.db")
    assert db.journal_mode == "wal"
    assert db.schema_version == len(MIGRATIONS)
    assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path: Path) -> None:
    DatabaseManager(tmp_path / "sync.db").save_synced([synced("a.txt")])
    again = DatabaseManager(tmp_path / "sync.db")
    assert again.get_record_count() == 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sync.db"
    DatabaseManager(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(DatabaseError, match="newer"):
        DatabaseManager(path)


def test_ids_are_stable_and_content_version_counts_etag_changes(tmp_path: Path) -> None:
    db = DatabaseManager(tmp_path / "sync.db")
    db.save_synced([synced("a.txt"), synced("b.txt")])
    first = db.get_record("a.txt")
    db.save_synced([synced("a.txt", permissions='{"x":1}')])  # same etag
    db.save_synced([synced("a.txt", etag="e2")])
    record = db.get_record("a.txt")
    assert record is not None and first is not None
    assert record.id == first.id
    assert record.content_version == 2
    assert [r.path for r in db.records.iter_all(batch=1)] == ["a.txt", "b.txt"]
    assert set(db.records.lookup(["a.txt", "zzz"])) == {"a.txt"}


def test_runs_and_failed_operations_are_reported_until_planned_again(tmp_path: Path) -> None:
    db = DatabaseManager(tmp_path / "sync.db")
    report = RunReport(run_id="r1", mode="initial-sync", started_at="2026-11-24T00:00:00Z")
    db.start_run("r1", "initial-sync", report.started_at)
    record_id = db.records.upsert("bad.txt", 3, "e1", "2026-11-24T00:00:00Z", "{}")
    [stored] = db.operations.add("r1", [FileOperation("create", record_id, "bad.txt", content_version=1)])
    assert stored.key == f"r1:{stored.row_id}"
    assert db.operation_counts() == {"pending": 1, "failed": 0}
    db.operations.record([Outcome(stored, "failed", "400 bad path")])
    report.finished_at, report.failed = "2026-11-24T00:01:00Z", 1
    db.finish_run(report, "failed")
    assert db.last_runs()["initial-sync"]["status"] == "failed"
    assert db.operation_counts() == {"pending": 0, "failed": 1}
    assert db.records.dirty_ids() == [record_id]  # still to do
    db.operations.add("r2", [FileOperation("create", record_id, "bad.txt", content_version=1)])
    assert db.operation_counts() == {"pending": 1, "failed": 0}


def test_a_success_advances_the_baseline_and_clears_the_dirty_mark(tmp_path: Path) -> None:
    db = DatabaseManager(tmp_path / "sync.db")
    record_id = db.records.upsert("a.txt", 3, "e1", "2026-11-24T00:00:00Z", "")
    [stored] = db.operations.add("r1", [FileOperation("create", record_id, "a.txt", content_version=1)])
    delivered = Delivered(4, "e2", "2026-11-24T00:00:05Z", '{"read":["x"]}')
    db.operations.record([Outcome(stored, "done", delivered=delivered)])
    assert db.records.dirty_ids() == []
    [baseline] = list(db.iter_baseline())
    assert (baseline.path, baseline.etag, baseline.permissions) == ("a.txt", "e2", '{"read":["x"]}')
    record = db.get_record("a.txt")
    assert record is not None and record.permissions == '{"read":["x"]}'  # learnt on delivery


def test_lock_refuses_a_second_holder_and_frees_on_release(tmp_path: Path) -> None:
    path = tmp_path / "sync.db"
    with SyncLock(path), pytest.raises(LockHeldError, match="holds the lock"):
        SyncLock(path).acquire()
    with SyncLock(path):
        pass


def test_lock_is_freed_when_its_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "sync.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from sync_service.services.sync_lock import SyncLock; "
         f"SyncLock({str(path)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert SyncLock(path).is_held_elsewhere()
    with pytest.raises(LockHeldError, match=str(holder.pid)):
        SyncLock(path).acquire()
    holder.kill()
    holder.wait()
    SyncLock(path).acquire()  # free again: no stale lock after kill -9
