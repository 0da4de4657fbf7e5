"""The single-writer lock when the state is in PostgreSQL: a session advisory lock.

``pg_try_advisory_lock`` on a connection of its own, held for the whole run: the server drops
the lock when that session ends, so a holder killed with ``kill -9`` (its socket closed by the
kernel) never leaves a stale lock, on whichever machine it ran.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import psycopg

from sync_service.errors import DatabaseError, LockHeldError
from sync_service.store.postgres_backend import LOCK_NAMESPACE, RUN_LOCK, connect
from sync_service.utils.redaction import mask_url

_HOLDERS = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 2
  AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid <> pg_backend_pid()
"""


class AdvisoryLock:
    """An exclusive, non-blocking lock on a PostgreSQL database, held for the length of a sync."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = mask_url(url)
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockHeldError at once."""
        conn = self._connect()
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, RUN_LOCK)).fetchone()
            if row is not None and row[0]:
                self._conn = conn
                return
            holders = [str(r[0]).removeprefix("s3-sync ") for r in
                       conn.execute(_HOLDERS, (LOCK_NAMESPACE, RUN_LOCK)).fetchall()]
        except psycopg.Error as exc:
            conn.close()
            raise DatabaseError(f"cannot take the lock on {self.shown}: {exc}") from exc
        conn.close()
        holder = holders[0] if holders else "unknown"
        raise LockHeldError(f"another sync (pid {holder}) holds the lock on {self.shown}; "
                            f"try again when it ends")

    def release(self) -> None:
        """Drop the lock (closing its session drops it)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def is_held_elsewhere(self) -> bool:
        """True when another session holds the lock now."""
        try:
            with self._connect() as conn:
                return bool(conn.execute(_HOLDERS, (LOCK_NAMESPACE, RUN_LOCK)).fetchall())
        except DatabaseError:
            return False

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return connect(self.url)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to {self.shown}: {exc}") from exc

    def __enter__(self) -> AdvisoryLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
