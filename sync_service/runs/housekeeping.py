"""Housekeeping (SPEC §6): what the service writes does not grow without bound.

Files older than ``RETENTION_DAYS`` go from the exports, the reports, the dead letters and the
processed spool files; rows go from the database: applied event ids once no redelivery can come
any more (the source's window), and finished runs, finished operations and dead letters older
than the retention. Pending and failed operations, the records and the baseline are never
touched. The daemon sweeps once an hour.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sync_service.models.data_models import iso_utc
from sync_service.store.database_manager import DatabaseManager
from sync_service.utils.clock import Clock

logger = logging.getLogger(__name__)

DAY_S = 86400.0


@dataclass
class SweepResult:
    """What one sweep removed."""

    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def removed(self) -> int:
        """Files and rows removed in all."""
        return sum(self.files.values()) + sum(self.rows.values())


def expired(paths: Iterable[Path], cutoff: float) -> list[Path]:
    """The regular files among ``paths`` last modified before ``cutoff`` (Unix time)."""
    found = []
    for path in paths:
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                found.append(path)
        except OSError:
            continue  # gone meanwhile
    return found


class Housekeeper:
    """Removes what is older than the retention, and applied event ids past their window."""

    def __init__(self, db: DatabaseManager, folders: dict[str, Path], *, retention_days: int,
                 redelivery_window_s: float | None, clock: Clock | None = None) -> None:
        self.db = db
        self.folders = folders
        self.retention_days = retention_days
        self.redelivery_window_s = redelivery_window_s
        self.clock = clock or Clock()

    def sweep(self) -> SweepResult:
        """One pass over the folders and the tables; RETENTION_DAYS=0 keeps everything."""
        result = SweepResult()
        if self.retention_days <= 0:
            return result
        now = self.clock.now()
        cutoff = now - timedelta(days=self.retention_days)
        for name, folder in self.folders.items():
            removed = 0
            for path in expired(folder.glob("*") if folder.is_dir() else [], cutoff.timestamp()):
                try:
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
            result.files[name] = removed
        before = iso_utc(cutoff)
        result.rows["runs"] = self.db.runs.prune(before)
        result.rows["operations"] = self.db.operations.prune_finished(before)
        result.rows["dead_letters"] = self.db.events.prune_dead_letters(before)
        if self.redelivery_window_s is not None:
            # A day past the window: a redelivery is an at-least-once source's, not a clock's.
            window_start = now - timedelta(seconds=self.redelivery_window_s + DAY_S)
            result.rows["applied_events"] = self.db.events.prune_applied(iso_utc(window_start))
        if result.removed:
            logger.info("housekeeping removed %s files and %s rows", result.files, result.rows)
        return result


def due(last: datetime | None, now: datetime, every_s: float) -> bool:
    """True when a sweep last run at ``last`` is ``every_s`` seconds old (or never ran)."""
    return last is None or (now - last).total_seconds() >= every_s
