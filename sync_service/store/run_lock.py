"""The run lock (SPEC §7): one sync at a time on a database, a second exits with code 3.

For SQLite, an ``flock`` on ``<database>.lock`` (``SyncLock``): the kernel drops it when the
holder dies, even by ``kill -9``, so a crashed run never leaves a stale lock behind. For
PostgreSQL (``DATABASE_URL``), a session advisory lock in the database (``AdvisoryLock``),
``pg_try_advisory_lock`` on a connection of its own held for the whole run: the server drops it
when that session ends, so a holder killed with ``kill -9`` (its socket closed by the kernel)
never leaves a stale lock, on whichever machine it ran. ``lock_for`` picks the one that fits.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from sync_service.errors import DatabaseError, LockHeldError
from sync_service.store.database import is_postgres_url
from sync_service.utils.redaction import mask_url

if TYPE_CHECKING:  # PostgreSQL's modules load only where a PostgreSQL state is used
    import psycopg


class RunLock(Protocol):
    """What a run holds so that it is the only writer."""

    def acquire(self) -> None:
        """Take the lock or raise LockHeldError at once."""

    def release(self) -> None:
        """Drop the lock."""

    def is_held_elsewhere(self) -> bool:
        """True when another process holds the lock now."""

    def __enter__(self) -> RunLock: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


def lock_for(database: Path | str) -> RunLock:
    """The lock of the database at ``database`` (an SQLite path or a PostgreSQL URL)."""
    if is_postgres_url(str(database)):
        return AdvisoryLock(str(database))
    return SyncLock(database)


class SyncLock:
    """An exclusive, non-blocking lock held for the length of a sync."""

    def __init__(self, database_path: Path | str) -> None:
        self.path = Path(f"{database_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockHeldError at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeldError(
                f"another sync (pid {holder}) holds the lock {self.path}; try again when it ends"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def is_held_elsewhere(self) -> bool:
        """True when another process holds the lock now."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def __enter__(self) -> SyncLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


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
        import psycopg

        from sync_service.store.postgres_backend import LOCK_NAMESPACE, RUN_LOCK
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
        from sync_service.store.postgres_backend import LOCK_NAMESPACE, RUN_LOCK
        try:
            with self._connect() as conn:
                return bool(conn.execute(_HOLDERS, (LOCK_NAMESPACE, RUN_LOCK)).fetchall())
        except DatabaseError:
            return False

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        from sync_service.store.postgres_backend import connect
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
