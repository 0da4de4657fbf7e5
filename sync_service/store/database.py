"""One database, whatever engine holds it: re-entrant write transactions, statements, results.

``Database`` is what the stores see. Two backends fill in the engine's part, each in its own
module: ``SQLiteDatabase`` (``sqlite_backend``: the embedded default, a file and a connection
per thread) and ``PostgresDatabase`` (``postgres_backend``: ``DATABASE_URL``, a connection pool).
``open_database`` picks one from a path or a URL.

The stores write one SQL that both engines run: ``?`` placeholders (the PostgreSQL backend
turns them into its own), timestamps passed from Python, ``ON CONFLICT`` rather than
``INSERT OR …``, ``RETURNING`` rather than ``lastrowid``. What still differs (a scratch table,
the schema's DDL, versions, checks, copies) is a method of the backend.

Every library error leaving a backend is a ``DatabaseError``; a damaged file is a
``CorruptDatabaseError``, which no retry mends.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync_service.store.wakeups import Wakeups

if TYPE_CHECKING:
    from sync_service.store.outage import OutageWatch

#: The tables of the schema, in an order that copies cleanly into another database.
TABLES = ("files", "baseline", "dirty", "runs", "operations", "settings", "applied_events",
          "key_sequencers", "dead_letters", "listing_ranges")


class Result:
    """What a statement returned: its rows (read at once) and how many rows it changed."""

    def __init__(self, rows: Sequence[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = list(rows)
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        """The first row, if any."""
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every row."""
        return self.rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


class Database(ABC):
    """A database the stores read and write through; one subclass per engine."""

    #: ``sqlite`` or ``postgresql``.
    engine = ""
    #: A trivial query of the engine's own catalogue, for ``check``.
    check_query = ""
    #: The database server's clock in seconds since the epoch, as SQL: leases are stamped and
    #: compared on it, so the clocks of the machines sharing the database never mix.
    server_now = ""
    #: What a SELECT adds to lock the rows it reads until the transaction ends (PostgreSQL);
    #: SQLite has one writer at a time and needs none.
    for_update = ""
    #: The same, skipping rows another transaction holds (claims: never wait for a claimer).
    skip_locked = ""

    def __init__(self) -> None:
        self._local = threading.local()
        #: Waits out the database going away before a connection is had (None: fail at once).
        self.outage: OutageWatch | None = None
        #: Wakes this process's claimers and listers when work is added (``work_added``).
        self.wakeups = Wakeups()

    # -- what the stores use ----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction; writers queue for it instead of deadlocking.

        Inside another transaction of this thread it joins that one, so a store method that is
        atomic on its own can also be one step of a caller's larger transaction.
        """
        joined = getattr(self._local, "conn", None)
        if joined is not None:
            yield joined
            return
        conn = self._begin()
        self._local.conn = conn
        self._local.woken = False
        try:
            yield conn
        except BaseException:
            self._local.conn = None
            self._end(conn, commit=False)
            raise
        self._local.conn = None
        self._end(conn, commit=True)
        if self._local.woken:
            self.wakeups.wake_all()

    def work_added(self) -> None:
        """Say that something claimable was added or freed: this process's waiters wake once
        the transaction (if any) commits; other processes are told by ``_notify_others``."""
        self._notify_others()
        if self.in_transaction:
            self._local.woken = True
        else:
            self.wakeups.wake_all()

    @abstractmethod
    def _notify_others(self) -> None:
        """Tell the other processes on the database that work was added."""

    @property
    def in_transaction(self) -> bool:
        """True inside a transaction of this thread."""
        return getattr(self._local, "conn", None) is not None

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query."""
        return self.execute(sql, args).rows

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Result:
        """Run one statement (inside the caller's transaction, when there is one)."""
        with self._statement_connection() as conn:
            return self._run(conn, sql, tuple(args))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Run one statement for each row."""
        with self._statement_connection() as conn:
            self._run_many(conn, sql, [tuple(r) for r in rows])

    @abstractmethod
    def create_scratch_table(self, name: str, columns: str) -> None:
        """An empty table only this run uses (a drift scan's seen paths)."""

    # -- for the facade: what the database is, and its care -----------------------------------

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the database is, safe to show: a path, or a URL without its password."""

    @property
    @abstractmethod
    def schema_version(self) -> int:
        """The schema version the database is at."""

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode (``wal``); empty for other engines."""
        return ""

    def check(self) -> float:
        """Seconds a trivial query takes; raises DatabaseError when the database is unusable,
        at once: a health check says the database is unreachable, it does not wait it out."""
        started = time.monotonic()
        with self.failing_fast():
            self.query(self.check_query)
        return time.monotonic() - started

    @contextmanager
    def failing_fast(self) -> Iterator[None]:
        """Statements of this thread fail at once while the database is away, instead of
        waiting it out (a status page, a health check: they say so and answer)."""
        before = getattr(self._local, "fail_fast", False)
        self._local.fail_fast = True
        try:
            yield
        finally:
            self._local.fail_fast = before

    @property
    def _waits_out_outages(self) -> bool:
        """True when a statement of this thread waits for the database through ``outage``."""
        return self.outage is not None and not getattr(self._local, "fail_fast", False)

    @abstractmethod
    def backup_to(self, path: Path) -> None:
        """Write a consistent copy of the whole state to an SQLite file at ``path``."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the connections this object holds (of this thread, for SQLite)."""

    # -- what a backend fills in --------------------------------------------------------------

    def _statement_connection(self) -> AbstractContextManager[Any]:
        """The connection for one statement: the transaction's, or one of the backend's own."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return _Joined(conn)
        return self._autocommit_connection()

    @abstractmethod
    def _autocommit_connection(self) -> AbstractContextManager[Any]:
        """A connection for a statement outside any transaction (it commits on its own)."""

    @abstractmethod
    def _begin(self) -> Any:
        """A connection with a write transaction begun on it."""

    @abstractmethod
    def _end(self, conn: Any, *, commit: bool) -> None:
        """Commit or roll back the transaction ``_begin`` gave, and let go of its connection."""

    @abstractmethod
    def _run(self, conn: Any, sql: str, args: tuple[Any, ...]) -> Result:
        """One statement on ``conn``; library errors come out as DatabaseError."""

    @abstractmethod
    def _run_many(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One statement per row on ``conn``; library errors come out as DatabaseError."""


class _Joined(AbstractContextManager[Any]):
    """The transaction's own connection, used for one more statement."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


def now_iso() -> str:
    """The current UTC time as the stores write it (``2026-11-24T07:13:00Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_database(target: Path | str) -> Database:
    """The database at ``target``: a ``postgresql://`` URL, or the path of an SQLite file."""
    if is_postgres_url(str(target)):
        from sync_service.store.postgres_backend import PostgresDatabase

        return PostgresDatabase(str(target))
    from sync_service.store.sqlite_backend import SQLiteDatabase

    return SQLiteDatabase(target)


def is_postgres_url(target: str) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return target.startswith(("postgresql://", "postgres://"))
