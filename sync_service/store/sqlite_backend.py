"""The embedded default: an SQLite file, a connection per thread.

WAL mode with a busy timeout; a write transaction is ``BEGIN IMMEDIATE``, so writers queue; the
schema is versioned through ``PRAGMA user_version``. SQLite's NOTADB and CORRUPT become a
``CorruptDatabaseError`` that says what to do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sync_service.errors import CorruptDatabaseError, DatabaseError, DatabaseUnavailable
from sync_service.store.database import Database, Result
from sync_service.store.schema import MIGRATIONS

BUSY_TIMEOUT_MS = 30_000
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class SQLiteDatabase(Database):
    """The SQLite file and its connections."""

    engine = "sqlite"
    check_query = "SELECT count(*) FROM sqlite_master"
    server_now = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the folder of {self.path}: {exc}") from exc
        self._migrate()

    @property
    def location(self) -> str:
        """The file's path."""
        return str(self.path)

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "sqlite", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise _translated(self.path, exc, f"cannot open {self.path}") from exc
            self._local.sqlite = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "sqlite", None)
        if conn is not None:
            conn.close()
            self._local.sqlite = None

    def backup_to(self, path: Path) -> None:
        """Write a consistent copy of the database to ``path`` (SQLite's online backup)."""
        target = sqlite3.connect(path)
        try:
            self.conn.backup(target)
        except sqlite3.Error as exc:
            raise _translated(self.path, exc, f"copying {self.path} failed") from exc
        finally:
            target.close()

    def create_scratch_table(self, name: str, columns: str) -> None:
        """A temporary table of this thread's connection, emptied."""
        self.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
        self.execute(f"DELETE FROM temp.{name}")

    # -- the engine's part ----------------------------------------------------------------------

    def _notify_others(self) -> None:
        """Nobody to tell: one process syncs an SQLite state, its waiters are woken in-process."""

    def _autocommit_connection(self) -> AbstractContextManager[sqlite3.Connection]:
        return _this(self.conn)

    def _begin(self) -> sqlite3.Connection:
        conn = self.conn

        def begin() -> sqlite3.Connection:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translated(self.path, exc, str(self.path)) from exc
            return conn
        # Another writer past the busy timeout: waited out like an outage, when there is a watch.
        return self.outage.run(begin) if self.outage is not None else begin()

    def _end(self, conn: sqlite3.Connection, *, commit: bool) -> None:
        try:
            conn.execute("COMMIT" if commit else "ROLLBACK")
        except sqlite3.Error as exc:
            if commit:
                raise _translated(self.path, exc, str(self.path)) from exc

    def _run(self, conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> Result:
        try:
            cursor = conn.execute(sql, args)
            return Result(cursor.fetchall(), cursor.rowcount)
        except sqlite3.Error as exc:
            raise _translated(self.path, exc, str(self.path)) from exc

    def _run_many(self, conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _translated(self.path, exc, str(self.path)) from exc

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = self._run(conn, "PRAGMA user_version", ()).rows[0][0]
            if version > len(MIGRATIONS):
                raise DatabaseError(
                    f"{self.path} has schema version {version}, newer than this service knows "
                    f"({len(MIGRATIONS)}): upgrade the service"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    self._run(conn, statement, ())
                self._run(conn, f"PRAGMA user_version={number}", ())

    def columns(self, table: str) -> list[str]:
        """The columns of ``table``, in the schema's order."""
        return [row[1] for row in self.query(f"PRAGMA table_info({table})")]

    @property
    def schema_version(self) -> int:
        """The schema version the database is at."""
        return int(self.query("PRAGMA user_version")[0][0])

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode (``wal``)."""
        return str(self.query("PRAGMA journal_mode")[0][0])


@contextmanager
def _this(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    yield conn


def _translated(path: Path, exc: sqlite3.Error, context: str) -> DatabaseError:
    """The service's error for an SQLite one: damaged files get one that says what to do."""
    if getattr(exc, "sqlite_errorcode", None) in _DAMAGED:
        return CorruptDatabaseError(f"{path} is not a usable SQLite database ({exc}): restore it "
                                    f"from a backup, or move it away to start a new one")
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _BUSY:  # another writer past the busy timeout
        return DatabaseUnavailable(f"{context}: {exc}")
    return DatabaseError(f"{context}: {exc}")
