"""Plain records the service passes around: objects, file records, operations, run reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

OPERATION_KINDS = ("create", "update", "delete", "rename", "move", "update_permissions")


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC to the second, e.g. ``2026-11-24T07:13:00Z``.

    Seconds only, because S3 listings carry milliseconds but GET and HEAD headers do not:
    the two must compare equal for the same object.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ObjectSummary:
    """One object as a bucket listing shows it."""

    key: str
    path: str
    size: int
    etag: str
    last_modified: str


@dataclass(frozen=True)
class FileRecord:
    """One file as the database records it (SPEC §2)."""

    id: int
    path: str
    size: int
    etag: str
    last_modified: str
    permissions: str
    content_version: int = 1


@dataclass(frozen=True)
class SyncedFile:
    """What a worker learned about a file it has just delivered; becomes a FileRecord."""

    path: str
    size: int
    etag: str
    last_modified: str
    permissions: str


@dataclass(frozen=True)
class OperationFailure:
    """An operation that failed for good in this run."""

    op: str
    path: str
    error: str


@dataclass
class RunReport:
    """The report of one run (SPEC §6)."""

    run_id: str
    mode: str
    started_at: str
    finished_at: str | None = None
    duration_s: float = 0.0
    events_applied: int = 0
    events_rejected: int = 0
    operations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERATION_KINDS, 0))
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    #: Events left alone on purpose, by reason (also in ``skipped_reasons``): the daemon's
    #: ``sync_events_total{result=…}`` counts them.
    events_skipped: dict[str, int] = field(default_factory=dict)
    bytes_transferred: int = 0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    failures: list[OperationFailure] = field(default_factory=list)
    #: The cycles the run took: 1, or those of a daemon's report window (SPEC §6).
    cycles: int = 1
    #: Seconds from each event to its operations' success: count, p50, p99, max (windows).
    event_lag_s: dict[str, float] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count ``count`` items left alone, and why."""
        self.skipped += count
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + count

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return asdict(self)


@dataclass(frozen=True)
class FileOperation:
    """One change to make in the file manager, from the diff of two states.

    ``path`` is the file acted on (the source, for rename and move); ``new_path`` the target of
    a rename or move. The record fields carry the new state, so that the baseline can take it
    once the operation succeeded. ``temp`` marks an intermediate step through a temporary path.

    ``permissions`` empty means not known yet (a listing does not carry metadata): the executor
    reads them from the object and sets them when they differ from ``old_permissions``, what
    the file manager holds. ``object_path`` is where the content is in the bucket (for a move,
    the record's final path), when it differs from ``path``.
    """

    op: str
    record_id: int
    path: str
    new_path: str = ""
    permissions: str = ""
    size: int = 0
    etag: str = ""
    last_modified: str = ""
    content_version: int = 0
    temp: bool = False
    old_permissions: str = ""
    object_path: str = ""

    @property
    def target(self) -> str:
        """The path this operation writes to."""
        return self.new_path or self.path

    @property
    def source(self) -> str:
        """The path of the object in the bucket whose content this operation delivers."""
        return self.object_path or self.new_path or self.path


@dataclass(frozen=True)
class StoredOperation:
    """A planned operation as the operations table holds it: its row and Idempotency-Key, and
    who claimed it (None: applied by the holder of the run lock without a claim)."""

    row_id: int
    key: str
    operation: FileOperation
    claimed_by: str | None = None


#: The phases a plan applies in, by operation: deletes, then renames and moves, then creates
#: and updates, then permission changes (SPEC §2). The one table: the planner orders by it, the
#: executor applies by it, the operation store claims by it (``phase_sql``).
PHASES = {"delete": 0, "rename": 1, "move": 1, "create": 2, "update": 2, "update_permissions": 3}
#: Renames and moves: applied in the planner's order (wave by wave), claimed whole.
ORDERED_PHASE = 1

