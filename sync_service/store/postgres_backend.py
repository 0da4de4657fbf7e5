"""State in PostgreSQL (``DATABASE_URL=postgresql://…``): psycopg 3 and its connection pool.

A connection is borrowed from the pool for one statement, or for one transaction and held by
its thread until it ends. Writers do not take turns (SPEC §9): each rule that needs an order
has a narrow guard of its own in its store (a row lock on a listing's first range, claims
conditional on their lease), and transactions meet only on the rows they share. The schema is
versioned in the ``schema_version`` table; migrations run under an advisory lock of their own,
so processes starting together migrate once.

The stores' ``?`` placeholders become ``%s`` here (and a literal ``%`` becomes ``%%``), once
per statement text. PostgreSQL text cannot hold NUL: a NUL in a value (only a hostile message
kept as a dead letter carries one; paths never do) is stored as U+FFFD.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from sync_service.errors import DatabaseError, DatabaseUnavailable, RefusedError
from sync_service.store.database import TABLES, Database, Result
from sync_service.store.schema import POSTGRES_MIGRATIONS
from sync_service.store.sqlite_backend import SQLiteDatabase
from sync_service.store.wakeups import CHANNEL, Wakeups, listen_with
from sync_service.utils.redaction import mask_url

#: The first key of every advisory lock the service takes (ASCII "SYNC"); the second names it.
LOCK_NAMESPACE = 0x53594E43
RUN_LOCK = 1
MIGRATION_LOCK = 3
#: Connections a process holds at most: the claim loop, the outcome writer, the heartbeats and
#: LISTERS (8 by default) listers each hold one for a page's transaction at times.
POOL_SIZE = 16
CONNECT_TIMEOUT_S = 10
#: Seconds a statement waits for a connection of the pool (the server away, or all busy)
#: before the outage watch takes over the waiting (and says so).
POOL_WAIT_S = 5
#: How long a statement waits for a row lock before it fails.
LOCK_TIMEOUT_MS = 30_000
COPY_BATCH = 5_000
#: The columns an identity sequence numbers (moved past the ids an import brings).
_IDENTITY_COLUMNS = ("SELECT table_name, column_name FROM information_schema.columns "
                     "WHERE table_schema = current_schema() AND is_identity = 'YES'")


class PostgresDatabase(Database):
    """A PostgreSQL database and a pool of connections to it."""

    engine = "postgresql"
    check_query = "SELECT count(*) FROM schema_version"
    server_now = "extract(epoch FROM clock_timestamp())"
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        super().__init__()
        self.url = url
        self._shown = mask_url(url)
        # One plain connection first: it fails with the server's own reason, where a pool would
        # only time out; it also migrates.
        with self._translating(f"cannot connect to {self._shown}"), connect(url) as conn:
            self._migrate(conn)
        # Each connection is checked as it is lent: after a restart of the server the pool
        # hands out new connections, not the ones the restart broke.
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False,
                                    kwargs=connection_options(), configure=_configure,
                                    check=ConnectionPool.check_connection, timeout=POOL_WAIT_S,
                                    name="sync-state")
        with self._translating(f"cannot connect to {self._shown}"):
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        self.wakeups = Wakeups(listen_with(lambda: connect(url), self._shown))

    @property
    def location(self) -> str:
        """The URL with its password masked."""
        return self._shown

    def close(self) -> None:
        """Close the pool and every connection in it, and stop listening for wake-ups."""
        self.wakeups.close()
        self._pool.close()

    def _notify_others(self) -> None:
        self.execute(f"SELECT pg_notify('{CHANNEL}', '')")

    def create_scratch_table(self, name: str, columns: str) -> None:
        """An unlogged table, emptied (only the holder of the run lock scans)."""
        self.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS {name} ({columns})")
        self.execute(f"DELETE FROM {name}")

    @property
    def schema_version(self) -> int:
        """The schema version the database is at."""
        return int(self.query("SELECT version FROM schema_version")[0][0])

    def backup_to(self, path: Path) -> None:
        """Copy every table into a new SQLite file at ``path``, from one consistent snapshot
        (a dry run works on that copy)."""
        copy = SQLiteDatabase(path)
        try:
            with self._translating(f"copying {self._shown} failed"), self._pool.connection() as conn, \
                    conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                for table in TABLES:
                    columns = ", ".join(copy.columns(table))
                    marks = ", ".join("?" * len(columns.split(", ")))
                    with conn.cursor(name=f"copy_{table}") as cursor:
                        cursor.execute(f"SELECT {columns} FROM {table}")
                        while rows := cursor.fetchmany(COPY_BATCH):
                            with copy.transaction():
                                copy.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
        finally:
            copy.close()

    def import_from(self, source: SQLiteDatabase) -> dict[str, int]:
        """Copy the whole state of the SQLite database ``source`` into this one, which must
        hold no state yet (``RefusedError`` otherwise): one transaction, all or nothing, with
        ``COPY``. Ids are kept and the id sequences moved past them; pending operations and
        unfinished key ranges lose their claims (their holders worked on the other database).
        Returns the rows copied per table."""
        copied: dict[str, int] = {}
        with self.transaction() as conn, source.transaction() as reading:
            held = {t: n for t in TABLES if (n := int(self.query(f"SELECT count(*) FROM {t}")[0][0]))}
            if held:
                rows = ", ".join(f"{t} {n}" for t, n in held.items())
                raise RefusedError(f"{self._shown} already holds a state ({rows}); nothing was "
                                   "imported: import into an empty database")
            for table in TABLES:
                columns = ", ".join(source.columns(table))
                copied[table] = 0
                with self._translating(f"importing into {self._shown} failed"), \
                        conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in reading.execute(f"SELECT {columns} FROM {table} ORDER BY rowid"):
                        copy.write_row(_values(row))
                        copied[table] += 1
            for table, column in self.query(_IDENTITY_COLUMNS):
                self.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                             f"COALESCE(max({column}), 0) + 1, false) FROM {table}")
            self.execute("UPDATE operations SET claimed_by = NULL, lease_until = NULL "
                         "WHERE status = 'pending'")
            self.execute("UPDATE listing_ranges SET claimed_by = NULL, lease_until = NULL WHERE done = 0")
        return copied

    # -- the engine's part ----------------------------------------------------------------------

    def _autocommit_connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._borrowed()

    @contextmanager
    def _borrowed(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._lent()
        try:
            yield conn
        finally:
            self._pool.putconn(conn)  # a connection an outage broke is dropped by the pool

    def _lent(self) -> psycopg.Connection[Any]:
        """A connection of the pool, checked; while the server is away, waited for through
        ``outage`` when there is one (nothing was sent yet: trying again is harmless)."""
        def lend() -> psycopg.Connection[Any]:
            with self._translating(self._shown):
                return self._pool.getconn()
        return self.outage.run(lend) if self.outage is not None and self._waits_out_outages else lend()

    def _begin(self) -> psycopg.Connection[Any]:
        conn = self._lent()
        try:
            with self._translating(self._shown):
                conn.execute("BEGIN")
        except BaseException:
            self._pool.putconn(conn)
            raise
        return conn

    def _end(self, conn: psycopg.Connection[Any], *, commit: bool) -> None:
        try:
            if commit:
                with self._translating(self._shown):
                    conn.execute("COMMIT")
            else:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    pass  # a broken connection: the server rolled it back, the pool drops it
        finally:
            self._pool.putconn(conn)

    def _run(self, conn: psycopg.Connection[Any], sql: str, args: tuple[Any, ...]) -> Result:
        with self._translating(self._shown):
            cursor = conn.execute(_dialect(sql), _values(args))
            return Result(cursor.fetchall() if cursor.description else [], cursor.rowcount)

    def _run_many(self, conn: psycopg.Connection[Any], sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self._translating(self._shown), conn.cursor() as cursor:
            cursor.executemany(_dialect(sql), [_values(r) for r in rows])

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, MIGRATION_LOCK))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = int(row[0]) if row else 0
            if version > len(POSTGRES_MIGRATIONS):
                raise DatabaseError(
                    f"{self._shown} has schema version {version}, newer than this service knows "
                    f"({len(POSTGRES_MIGRATIONS)}): upgrade the service")
            for number, script in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = %s", (number,))

    @contextmanager
    def _translating(self, context: str) -> Iterator[None]:
        """psycopg's and the pool's errors, as the service's: the server away (a lost or
        refused connection, a shutdown, no connection lent in time) or a lock not had in time
        is ``DatabaseUnavailable``, which the loops wait out; anything else a DatabaseError."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise DatabaseUnavailable(f"{context}: {_message(exc)}") from exc
        except psycopg.Error as exc:
            raise DatabaseError(f"{context}: {_message(exc)}") from exc


def connect(url: str, **options: Any) -> psycopg.Connection[Any]:
    """One connection outside the pool (migrations, the run lock), set up as the pool's are."""
    conn = psycopg.connect(url, **{**connection_options(), **options})
    _configure(conn)
    return conn


def connection_options() -> dict[str, Any]:
    """Options of every connection: autocommit (transactions are begun explicitly), a connect
    timeout, and a name that says which process it belongs to."""
    return {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": f"s3-sync {os.getpid()}@{socket.gethostname()}"[:63]}


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")


@functools.lru_cache(maxsize=512)
def _dialect(sql: str) -> bytes:
    """The stores' SQL with psycopg's placeholders: ``?`` → ``%s``, ``%`` → ``%%`` (outside
    quoted text, where neither is a placeholder)."""
    out: list[str] = []
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "?":
            out.append("%s")
            continue
        if char == "%":
            out.append("%%")
            continue
        out.append(char)
    return "".join(out).encode()


def _values(args: tuple[Any, ...]) -> tuple[Any, ...]:
    if not any(isinstance(a, str) and "\x00" in a for a in args):
        return args
    return tuple(a.replace("\x00", "\ufffd") if isinstance(a, str) else a for a in args)


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

