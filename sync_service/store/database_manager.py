"""``DatabaseManager``: the facade over the service's stores (``sync_service.store``).

It opens the database (migrating it): an SQLite file given by its path, or PostgreSQL given by
a ``postgresql://`` URL; gives each store, and keeps the short calls people and scripts use,
such as ``DatabaseManager(path).get_record_count()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sync_service.models.data_models import FileRecord, RunReport, SyncedFile
from sync_service.store.database import Database, open_database
from sync_service.store.events import EventStore
from sync_service.store.listing_ranges import ListingRangeStore
from sync_service.store.operations import OperationStore
from sync_service.store.records import RecordStore
from sync_service.store.runs import RunStore
from sync_service.store.schema import MIGRATIONS

__all__ = ["MIGRATIONS", "DatabaseManager"]


class DatabaseManager:
    """The service's database and its stores."""

    def __init__(self, target: Path | str) -> None:
        self.database: Database = open_database(target)
        self.location = self.database.location
        self.records = RecordStore(self.database)
        self.operations = OperationStore(self.database)
        self.runs = RunStore(self.database)
        self.events = EventStore(self.database, self.runs)
        self.ranges = ListingRangeStore(self.database)

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.database.engine

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One write transaction over every store."""
        with self.database.transaction() as conn:
            yield conn

    def close(self) -> None:
        """Close this thread's connection (SQLite) or the connection pool (PostgreSQL)."""
        self.database.close()

    def copy_to(self, path: Path) -> DatabaseManager:
        """A consistent copy of the database in an SQLite file at ``path`` (for dry runs)."""
        self.database.backup_to(path)
        return DatabaseManager(path)

    @property
    def schema_version(self) -> int:
        """The schema version the database is at."""
        return self.database.schema_version

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode (``wal``); empty for PostgreSQL."""
        return self.database.journal_mode

    def check(self) -> float:
        """Seconds a trivial query takes; raises DatabaseError when the database is unusable."""
        return self.database.check()

    # -- the brief's calls, and a few more ------------------------------------------------------

    def get_record_count(self) -> int:
        """How many files are recorded."""
        return self.records.count()

    def get_record(self, path: str) -> FileRecord | None:
        """The record at ``path``, if any."""
        return self.records.get(path)

    def iter_records(self) -> Iterator[FileRecord]:
        """Every record ordered by id, read in batches so memory stays flat."""
        return self.records.iter_all("files")

    def iter_baseline(self) -> Iterator[FileRecord]:
        """What the file manager is known to hold, ordered by id."""
        return self.records.iter_all("baseline")

    def save_synced(self, files: list[SyncedFile]) -> None:
        """Record files the file manager is known to hold already (seeding, imports, tests)."""
        with self.database.transaction():
            ids = [self.records.upsert(f.path, f.size, f.etag, f.last_modified, f.permissions)
                   for f in files]
            self.operations.mark_delivered(ids)

    def start_run(self, run_id: str, mode: str, started_at: str) -> None:
        """Record that a run began."""
        self.runs.start(run_id, mode, started_at)

    def finish_run(self, report: RunReport, status: str) -> None:
        """Store a run's report and outcome."""
        self.runs.finish(report, status)

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """The newest run of each mode."""
        return self.runs.last_runs()

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs of every mode, newest first, with their reports."""
        return self.runs.recent(limit)

    def operation_counts(self) -> dict[str, int]:
        """How many operations are pending and failed."""
        return self.operations.counts()

    def failed_operations(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest failed operations."""
        return self.operations.failed(limit)

    def dead_letter_count(self) -> int:
        """How many messages were rejected into the dead letters."""
        return self.events.dead_letter_count()

    def recent_dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest dead letters with their reasons."""
        return self.events.recent_dead_letters(limit)

    def get_setting(self, key: str) -> str | None:
        """A stored setting such as the event position."""
        return self.runs.get_setting(key)

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting."""
        self.runs.set_setting(key, value)
