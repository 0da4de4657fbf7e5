"""SQLite state: file records, runs and their reports, operations, and small settings.

WAL mode with a busy timeout, one connection per thread, schema versioned through
``PRAGMA user_version``. Every library error leaving this module is a ``DatabaseError``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sync_service.errors import DatabaseError
from sync_service.models.data_models import FileRecord, OperationFailure, RunReport, SyncedFile

BUSY_TIMEOUT_MS = 30_000
LOOKUP_CHUNK = 500

MIGRATIONS: tuple[str, ...] = (
    # 1: file records, runs, operations, settings
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        permissions TEXT NOT NULL,
        content_version INTEGER NOT NULL DEFAULT 1,
        synced_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        report TEXT
    );
    CREATE INDEX runs_mode_started ON runs (mode, started_at);
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        op TEXT NOT NULL,
        path TEXT NOT NULL,
        new_path TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    );
    CREATE INDEX operations_status ON operations (status);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: what the file manager is known to hold, events, dead letters, planned operations
    """
    CREATE TABLE baseline (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        permissions TEXT NOT NULL,
        content_version INTEGER NOT NULL
    );
    CREATE INDEX baseline_path ON baseline (path);
    INSERT INTO baseline SELECT id, path, size, etag, last_modified, permissions, content_version
        FROM files;
    CREATE TABLE applied_events (event_id TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
    CREATE TABLE key_sequencers (path TEXT PRIMARY KEY, sequencer TEXT NOT NULL);
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        position TEXT,
        reason TEXT NOT NULL,
        raw TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    );
    ALTER TABLE operations ADD COLUMN seq INTEGER;
    ALTER TABLE operations ADD COLUMN record_id INTEGER;
    ALTER TABLE operations ADD COLUMN payload TEXT;
    CREATE INDEX operations_run ON operations (run_id, seq)
    """,
)

_COPY_TO_BASELINE = """
INSERT OR REPLACE INTO baseline (id, path, size, etag, last_modified, permissions, content_version)
SELECT id, path, size, etag, last_modified, permissions, content_version FROM files WHERE path = ?
"""

_UPSERT_FILE = """
INSERT INTO files (path, size, etag, last_modified, permissions, content_version)
VALUES (?, ?, ?, ?, ?, 1)
ON CONFLICT (path) DO UPDATE SET
    content_version = files.content_version + (files.etag != excluded.etag),
    size = excluded.size,
    etag = excluded.etag,
    last_modified = excluded.last_modified,
    permissions = excluded.permissions,
    synced_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
"""


class DatabaseManager:
    """The service's SQLite database."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the folder of {self.path}: {exc}") from exc
        self._migrate()

    # -- connections -------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise DatabaseError(f"cannot open {self.path}: {exc}") from exc
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def copy_to(self, path: Path) -> DatabaseManager:
        """A consistent copy of the database at ``path`` (SQLite's online backup)."""
        target = sqlite3.connect(path)
        try:
            self.conn.backup(target)
        except sqlite3.Error as exc:
            raise DatabaseError(f"copying {self.path} failed: {exc}") from exc
        finally:
            target.close()
        return DatabaseManager(path)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken at once so writers queue instead of deadlocking."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self.path}: {exc}") from exc

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self.path}: {exc}") from exc

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise DatabaseError(
                    f"{self.path} has schema version {version}, newer than this service knows "
                    f"({len(MIGRATIONS)}): upgrade the service"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")

    @property
    def schema_version(self) -> int:
        """The schema version the database is at."""
        return int(self._query("PRAGMA user_version")[0][0])

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode (``wal``)."""
        return str(self._query("PRAGMA journal_mode")[0][0])

    # -- file records ------------------------------------------------------------------------

    def get_record_count(self) -> int:
        """How many files are recorded."""
        return int(self._query("SELECT count(*) FROM files")[0][0])

    def get_record(self, path: str) -> FileRecord | None:
        """The record at ``path``, if any."""
        rows = self._query(
            "SELECT id, path, size, etag, last_modified, permissions, content_version "
            "FROM files WHERE path = ?", (path,))
        return FileRecord(*rows[0]) if rows else None

    def lookup(self, paths: list[str]) -> dict[str, FileRecord]:
        """The records of those ``paths`` that exist, by path."""
        found: dict[str, FileRecord] = {}
        for start in range(0, len(paths), LOOKUP_CHUNK):
            chunk = paths[start:start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                "SELECT id, path, size, etag, last_modified, permissions, content_version "
                f"FROM files WHERE path IN ({marks})", chunk):
                found[row[1]] = FileRecord(*row)
        return found

    def iter_records(self, batch: int = 10_000) -> Iterator[FileRecord]:
        """Every record ordered by id, read in batches so memory stays flat."""
        return self._iter_table("files", batch)

    def _iter_table(self, table: str, batch: int) -> Iterator[FileRecord]:
        last_id = 0
        while True:
            rows = self._query(
                "SELECT id, path, size, etag, last_modified, permissions, content_version "
                f"FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (last_id, batch))
            if not rows:
                return
            for row in rows:
                yield FileRecord(*row)
            last_id = rows[-1][0]

    def save_synced(self, files: list[SyncedFile]) -> None:
        """Record delivered files in one transaction (new path: new id; new etag: version+1).

        They are in the file manager now, so the baseline takes the same rows.
        """
        if not files:
            return
        with self.transaction() as conn:
            conn.executemany(_UPSERT_FILE, [
                (f.path, f.size, f.etag, f.last_modified, f.permissions) for f in files
            ])
            conn.executemany(_COPY_TO_BASELINE, [(f.path,) for f in files])

    def iter_baseline(self, batch: int = 10_000) -> Iterator[FileRecord]:
        """Every baseline row (what the file manager is known to hold) ordered by id."""
        return self._iter_table("baseline", batch)

    def iter_records_by_path(self, batch: int = 10_000) -> Iterator[FileRecord]:
        """Every record ordered by path (the order of an S3 listing), read in batches."""
        last = ""
        first = True
        while True:
            rows = self._query(
                "SELECT id, path, size, etag, last_modified, permissions, content_version "
                "FROM files WHERE path > ? OR ? ORDER BY path LIMIT ?", (last, first, batch))
            if not rows:
                return
            for row in rows:
                yield FileRecord(*row)
            last, first = rows[-1][1], False

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, run_id: str, mode: str, started_at: str) -> None:
        """Record that a run began."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO runs (run_id, mode, started_at, status) VALUES (?,?,?,?)",
                         (run_id, mode, started_at, "running"))

    def finish_run(self, report: RunReport, status: str) -> None:
        """Store a run's report and outcome."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, report = ? WHERE run_id = ?",
                (report.finished_at, status, json.dumps(report.to_dict()), report.run_id))

    def record_failures(self, run_id: str, failures: list[OperationFailure]) -> None:
        """Keep failed operations so that status shows them and the next run retries them."""
        if not failures:
            return
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO operations (run_id, op, path, status, attempts, error) "
                "VALUES (?, ?, ?, 'failed', 1, ?)",
                [(run_id, f.op, f.path, f.error) for f in failures])

    def supersede_failures(self, ops: tuple[str, ...], run_id: str) -> int:
        """Mark earlier failures of ``ops`` as taken over by run ``run_id``, which retries them."""
        marks = ",".join("?" * len(ops))
        with self.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE operations SET status = 'superseded', error = error || ' (retried by ' "
                f"|| ? || ')', updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') "
                f"WHERE status = 'failed' AND record_id IS NULL AND op IN ({marks})", (run_id, *ops))
            return cursor.rowcount

    def failed_paths(self, ops: tuple[str, ...]) -> list[str]:
        """Paths of failed operations of ``ops`` that no plan covers (initial-sync failures)."""
        marks = ",".join("?" * len(ops))
        return [row[0] for row in self._query(
            f"SELECT DISTINCT path FROM operations WHERE status = 'failed' AND record_id IS NULL "
            f"AND op IN ({marks}) ORDER BY path", ops)]

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """The newest run of each mode: id, times, status, and its report when finished."""
        rows = self._query(
            "SELECT r.mode, r.run_id, r.started_at, r.finished_at, r.status, r.report FROM runs r "
            "WHERE r.started_at = (SELECT max(started_at) FROM runs WHERE mode = r.mode) "
            "ORDER BY r.mode")
        return {
            mode: {"run_id": run_id, "started_at": started, "finished_at": finished,
                   "status": status, "report": json.loads(report) if report else None}
            for mode, run_id, started, finished, status, report in rows
        }

    def operation_counts(self) -> dict[str, int]:
        """How many operations are pending and failed."""
        counts = {"pending": 0, "failed": 0}
        for status, count in self._query(
                "SELECT status, count(*) FROM operations WHERE status IN ('pending', 'failed') "
                "GROUP BY status"):
            counts[status] = count
        return counts

    def dead_letter_count(self) -> int:
        """How many messages were rejected into the dead letters."""
        return int(self._query("SELECT count(*) FROM dead_letters")[0][0])

    def failed_operations(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest failed operations."""
        rows = self._query(
            "SELECT run_id, op, path, error, updated_at FROM operations WHERE status = 'failed' "
            "ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(zip(("run_id", "op", "path", "error", "at"), row, strict=True)) for row in rows]

    # -- settings ----------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        """A stored setting such as the event position."""
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def check(self) -> float:
        """Seconds a trivial query takes; raises DatabaseError when the database is unusable."""
        import time
        started = time.monotonic()
        self._query("SELECT count(*) FROM sqlite_master")
        return time.monotonic() - started
