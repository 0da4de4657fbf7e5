"""The single-writer lock beside the database (SPEC §7).

For SQLite, an ``flock`` on ``<database>.lock``: the kernel drops it when the holder dies, even
by ``kill -9``, so a crashed run never leaves a stale lock behind. For PostgreSQL
(``DATABASE_URL``), a session advisory lock in the database (``store.advisory_lock``), which the
server drops when the holder's session ends. ``lock_for`` picks the one that fits.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Protocol

from sync_service.errors import LockHeldError
from sync_service.store.database import is_postgres_url


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
        from sync_service.store.advisory_lock import AdvisoryLock

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
