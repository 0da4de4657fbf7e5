"""The store contract, run against SQLite and PostgreSQL: migrations, records and versions,
runs, operations and the baseline, the single-writer lock. Then what is SQLite's own (WAL)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devtools.local_servers import REPO_ROOT
from sync_service.errors import DatabaseError, LockHeldError
from sync_service.models.data_models import FileOperation, RunReport, SyncedFile
from sync_service.store.database_manager import MIGRATIONS, DatabaseManager
from sync_service.store.operations import Delivered, Outcome
from sync_service.store.run_lock import lock_for
from sync_service.store.schema import POSTGRES_MIGRATIONS
from tests.helpers.harness import Databases


def synced(path: str, etag: str = "e1", permissions: str = "{}") -> SyncedFile:
    return SyncedFile(path, 3, etag, "2026-11-24T00:00:00Z", permissions)


def test_new_sqlite_database_is_wal_with_a_busy_timeout_at_the_latest_schema(tmp_path: Path) -> None:
    db = DatabaseManager(tmp_path / "nested" / "sync.db")
    assert db.engine == "sqlite"
    assert db.journal_mode == "wal"
    assert db.schema_version == len(MIGRATIONS)
    assert db.database.query("PRAGMA busy_timeout")[0][0] >= 5000


def test_a_new_database_is_at_the_latest_schema(databases: Databases) -> None:
    db = databases.open()
    assert db.schema_version == len(MIGRATIONS) == len(POSTGRES_MIGRATIONS)
    assert db.check() >= 0
    assert db.get_record_count() == 0


def test_reopening_keeps_data_and_does_not_migrate_twice(databases: Databases) -> None:
    databases.open().save_synced([synced("a.txt")])
    again = databases.open()
    assert again.get_record_count() == 1


def test_a_newer_schema_is_refused(databases: Databases) -> None:
    db = databases.open()
    newer = len(MIGRATIONS) + 1
    if db.engine == "sqlite":
        db.database.execute(f"PRAGMA user_version={newer}")
    else:
        db.database.execute("UPDATE schema_version SET version = ?", (newer,))
    with pytest.raises(DatabaseError, match="newer"):
        databases.open()


def test_an_unreachable_postgresql_server_is_a_database_error_without_the_password() -> None:
    with pytest.raises(DatabaseError, match="cannot connect") as raised:
        DatabaseManager("postgresql://sync:s3cr3t-pw@127.0.0.1:9/state")
    assert "s3cr3t-pw" not in str(raised.value)
    assert "postgresql://sync:***@127.0.0.1:9/state" in str(raised.value)


def test_ids_are_stable_and_content_version_counts_etag_changes(databases: Databases) -> None:
    db = databases.open()
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


def test_runs_and_failed_operations_are_reported_until_planned_again(databases: Databases) -> None:
    db = databases.open()
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


def test_a_success_advances_the_baseline_and_clears_the_dirty_mark(databases: Databases) -> None:
    db = databases.open()
    record_id = db.records.upsert("a.txt", 3, "e1", "2026-11-24T00:00:00Z", "")
    [stored] = db.operations.add("r1", [FileOperation("create", record_id, "a.txt", content_version=1)])
    delivered = Delivered(4, "e2", "2026-11-24T00:00:05Z", '{"read":["x"]}')
    db.operations.record([Outcome(stored, "done", delivered=delivered)])
    assert db.records.dirty_ids() == []
    [baseline] = list(db.iter_baseline())
    assert (baseline.path, baseline.etag, baseline.permissions) == ("a.txt", "e2", '{"read":["x"]}')
    record = db.get_record("a.txt")
    assert record is not None and record.permissions == '{"read":["x"]}'  # learnt on delivery


def test_a_transaction_is_all_or_nothing_and_joined_by_store_calls(databases: Databases) -> None:
    db = databases.open()
    with pytest.raises(RuntimeError), db.transaction():
        db.records.upsert("a.txt", 3, "e1", "2026-11-24T00:00:00Z", "{}")  # joins, does not commit
        db.set_setting("k", "v")
        raise RuntimeError("rolled back")
    assert db.get_record_count() == 0 and db.get_setting("k") is None
    with db.transaction():
        db.records.upsert("a.txt", 3, "e1", "2026-11-24T00:00:00Z", "{}")
        db.set_setting("k", "v")
    assert db.get_record_count() == 1 and db.get_setting("k") == "v"


def test_threads_write_through_their_own_connections(databases: Databases) -> None:
    db = databases.open()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(20):
                with db.transaction():
                    db.records.upsert(f"t{n}/{i}.txt", 1, "e", "2026-11-24T00:00:00Z", "{}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.get_record_count() == 80
    assert sorted(db.records.dirty_ids()) == sorted(r.id for r in db.iter_records())


def test_paths_are_ordered_byte_by_byte_as_s3_lists_them(databases: Databases) -> None:
    db = databases.open()
    paths = ["b.txt", "B.txt", "a b.txt", "a-b.txt", "a_b.txt", "ä.txt", "Z.txt", "~.txt", "a/b.txt"]
    db.save_synced([synced(p) for p in paths])
    assert [r.path for r in db.records.iter_by_path(batch=2)] == sorted(paths, key=str.encode)


def test_a_drift_scan_names_the_records_a_listing_did_not_show(databases: Databases) -> None:
    db = databases.open()
    db.save_synced([synced(p) for p in ("a.txt", "b.txt", "c.txt")])
    db.records.start_scan()
    db.records.saw(["a.txt", "c.txt", "new.txt"])
    db.records.saw(["a.txt"])
    assert db.records.unseen() == ["b.txt"]


def test_the_dry_run_copy_is_an_sqlite_file_with_everything(databases: Databases, tmp_path: Path) -> None:
    db = databases.open()
    db.save_synced([synced("a.txt"), synced("b.txt", permissions='{"r":1}')])
    db.start_run("r1", "initial-sync", "2026-11-24T00:00:00Z")
    db.events.add_dead_letter("file", "x:1", "bad json", "{oops\x00")
    copy = db.copy_to(tmp_path / "copy.db")
    try:
        assert copy.engine == "sqlite"
        assert list(copy.iter_records()) == list(db.iter_records())
        assert list(copy.iter_baseline()) == list(db.iter_baseline())
        assert copy.last_runs().keys() == {"initial-sync"}
        assert copy.dead_letter_count() == 1
    finally:
        copy.close()


def test_the_status_lists_runs_newest_first(databases: Databases) -> None:
    db = databases.open()
    for run_id in ("r1", "r2", "r3"):
        db.start_run(run_id, "incremental-sync", "2026-11-24T00:00:00Z")  # the same second
    assert [r["run_id"] for r in db.recent_runs()] == ["r3", "r2", "r1"]
    assert db.last_runs()["incremental-sync"]["status"] == "running"


def test_lock_refuses_a_second_holder_and_frees_on_release(store_target: str | Path) -> None:
    with lock_for(store_target), pytest.raises(LockHeldError, match="holds the lock"):
        lock_for(store_target).acquire()
    with lock_for(store_target):
        pass


def test_lock_is_freed_when_its_holder_is_killed(store_target: str | Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from sync_service.store.run_lock import lock_for; "
         f"lock = lock_for({str(store_target)!r}); lock.acquire(); print('held', flush=True); sys.stdin.read()"],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # holds until killed
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert lock_for(store_target).is_held_elsewhere()
    with pytest.raises(LockHeldError, match=str(holder.pid)):
        lock_for(store_target).acquire()
    holder.kill()
    holder.wait()
    lock = lock_for(store_target)
    for _ in range(50):  # the server notices the closed session within moments
        try:
            lock.acquire()
            break
        except LockHeldError:
            threading.Event().wait(0.1)
    else:
        lock.acquire()  # free again: no stale lock after kill -9
    lock.release()
    assert not lock_for(store_target).is_held_elsewhere()
