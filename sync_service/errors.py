"""Errors of the sync service, classified by what the caller does next.

::

    SyncError                     the base; one no handler takes stops the command, exit 1
     ├── ConfigError              bad usage or configuration: stop, exit 2
     ├── LockHeldError            another run holds the database's run lock: stop, exit 3
     ├── DatabaseError            the database (SQLite or PostgreSQL) failed: stop, exit 1
     │    ├── DatabaseUnavailable     unreachable for now: wait, then the unit of work again
     │    └── CorruptDatabaseError    the SQLite file is no database or a damaged one: exit 2
     ├── RefusedError             a guard refused before anything changed (reconcile's
     │                            --max-delete, import-state into a database that holds a state)
     ├── EventSourceError         the event source (NATS) failed or is unreachable: stop this run
     ├── StorageError             the bucket (S3, GCS, Azure) failed, a listing: stop this run
     │    └── ObjectError         one object's HEAD or GET failed after the data path's own
     │         │                  retries: fail that one operation or event, the rest go on
     │         └── ObjectGone     the object vanished between listing and reading: skip it
     └── ApiError                 the file-manager API failed (``status``: its HTTP status)
          ├── RetryableApiError   5xx, 408, 429, timeouts, connection errors: retried in place,
          │    │                  no sooner than the server's ``Retry-After`` (capped)
          │    └── IntegrityError saveToDisk stored other bytes than sent: retried with a new key
          └── PermanentApiError   any other 4xx: this operation failed, keep it for the next run
               ├── NotFoundError  404: the file manager does not hold the path
               └── ConflictError  409: the target path is taken

Library exceptions (botocore, aiohttp, sqlite3, psycopg) are translated into these at the client
boundary; planning, sources, execution and runs only ever catch ``SyncError`` subclasses.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base class of every error the service raises on purpose."""

    retryable = False


class ConfigError(SyncError):
    """A configuration variable or command-line argument is unusable."""


class LockHeldError(SyncError):
    """Another process holds the single-writer lock of the database."""


class DatabaseError(SyncError):
    """The database could not be opened, migrated, read or written."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached now (a restart, a network cut, SQLite busy past its
    timeout): the unit of work is tried again once it is back (``OutageWatch``)."""


class CorruptDatabaseError(DatabaseError):
    """The database file is not an SQLite database, or a damaged one: only a person can restore it."""


class RefusedError(SyncError):
    """A guard (such as reconcile's --max-delete) refused to go ahead."""


class EventSourceError(SyncError):
    """The event source could not be read, acknowledged or published to."""


class StorageError(SyncError):
    """The bucket (S3, GCS or Azure) answered with an error or could not be reached."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ObjectError(StorageError):
    """One object could not be read (403, 5xx after retries, a body broken mid-stream)."""


class ObjectGone(ObjectError):
    """The object no longer exists in the bucket."""


class ApiError(SyncError):
    """The file-manager API refused or failed a call."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableApiError(ApiError):
    """A failure worth another attempt after a backoff."""

    retryable = True

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class IntegrityError(RetryableApiError):
    """``saveToDisk`` answered with another size or sha256 than was sent.

    Retried, but never with the same Idempotency-Key: the server would replay the bad answer.
    """


class PermanentApiError(ApiError):
    """A failure that another attempt would only repeat."""


class NotFoundError(PermanentApiError):
    """404: the file manager does not hold the path (``updatePermissions``, ``moveFile``)."""


class ConflictError(PermanentApiError):
    """409: the target of a ``moveFile`` is already taken."""
