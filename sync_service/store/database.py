"""One SQLite database: a connection per thread, write transactions, versioned migrations.

WAL mode with a busy timeout; the schema is versioned through ``PRAGMA user_version``. Every
library error leaving this module is a ``DatabaseError``; a file that is not a database or a
damaged one (SQLite's NOTADB and CORRUPT) is a ``CorruptDatabaseError``, which no retry mends.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sync_service.errors import CorruptDatabaseError, DatabaseError
from sync_service.store.schema import MIGRATIONS

BUSY_TIMEOUT_MS = 30_000
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class Database:
    """The SQLite file and its connections."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the folder of {self.path}: {exc}") from exc
        self._migrate()

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
                raise _translated(self.path, exc, f"cannot open {self.path}") from exc
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def backup_to(self, path: Path) -> None:
        """Write a consistent copy of the database to ``path`` (SQLite's online backup)."""
        target = sqlite3.connect(path)
        try:
            self.conn.backup(target)
        except sqlite3.Error as exc:
            raise _translated(self.path, exc, f"copying {self.path} failed") from exc
        finally:
            target.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken at once so writers queue instead of deadlocking.

        Inside another transaction of this thread it joins that one, so a store method that is
        atomic on its own can also be one step of a caller's larger transaction.
        """
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _translated(self.path, exc, str(self.path)) from exc

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query."""
        try:
            return self.conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise _translated(self.path, exc, str(self.path)) from exc

    def execute(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Run one statement (inside the caller's transaction, when there is one)."""
        try:
            return self.conn.execute(sql, tuple(args))
        except sqlite3.Error as exc:
            raise _translated(self.path, exc, str(self.path)) from exc

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Run one statement for each row."""
        try:
            self.conn.executemany(sql, (tuple(r) for r in rows))
        except sqlite3.Error as exc:
            raise _translated(self.path, exc, str(self.path)) from exc

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

    def check(self) -> float:
        """Seconds a trivial query takes; raises DatabaseError when the database is unusable."""
        started = time.monotonic()
        self.query("SELECT count(*) FROM sqlite_master")
        return time.monotonic() - started

    @property
    def schema_version(self) -> int:
        """The schema version the database is at."""
        return int(self.query("PRAGMA user_version")[0][0])

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode (``wal``)."""
        return str(self.query("PRAGMA journal_mode")[0][0])


def _translated(path: Path, exc: sqlite3.Error, context: str) -> DatabaseError:
    """The service's error for an SQLite one: damaged files get one that says what to do."""
    if getattr(exc, "sqlite_errorcode", None) in _DAMAGED:
        return CorruptDatabaseError(f"{path} is not a usable SQLite database ({exc}): restore it "
                                    f"from a backup, or move it away to start a new one")
    return DatabaseError(f"{context}: {exc}")
