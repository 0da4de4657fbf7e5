"""Planners (SPEC §1): each turns what it learnt into operations stored in the database, and
never talks to the file manager; the executor applies what they store.

* ``plan_dirty`` — the records marked dirty (by event replay, by a drift scan, or left by
  operations that failed): the diff of their baseline rows against their records, ordered into
  a plan that cannot collide. Incremental sync, reconcile and the retry of earlier failures
  all plan this way, so a cycle costs what its dirty records cost, not what the bucket holds.
* ``plan_page`` — one page of the bucket listing (a ``RangeLister`` lists the key ranges):
  its new and changed objects become records and operations, stored in one transaction with
  the range's position, so an interrupted initial sync continues after the last page planned.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sync_service.models.data_models import FileOperation, FileRecord, ObjectSummary, StoredOperation
from sync_service.planning.diff import diff_records
from sync_service.planning.filters import EVERYTHING, ObjectFilter
from sync_service.planning.plan_order import plan_operations
from sync_service.store.csv_processor import CSVProcessor, write_operations
from sync_service.store.database_manager import DatabaseManager
from sync_service.utils.paths import unsyncable

logger = logging.getLogger(__name__)



@dataclass
class PlannedBatch:
    """Operations a planner stored together (all independent of each other), and what it left
    alone: counts by reason, and each key with its reason."""

    operations: list[StoredOperation]
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_keys: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PlanEntry:
    """One line of a dry run: an operation that would run (``refresh``: an update of the
    permissions read from the object), or an object left alone (``skip``) and why."""

    action: str
    path: str
    operation: FileOperation | None = None
    reason: str = ""

    @classmethod
    def of(cls, operation: FileOperation) -> PlanEntry:
        """The entry of a planned operation."""
        refresh = operation.op == "update_permissions" and not operation.permissions
        return cls("refresh" if refresh else operation.op, operation.target, operation)


def plan_dirty(db: DatabaseManager, run_id: str, *, exclude: Iterable[int] = (),
               csv: CSVProcessor | None = None) -> list[StoredOperation]:
    """Store the plan that brings the file manager to the dirty records (but ``exclude``).

    With ``csv``, the cycle's two states are written as ``<run_id>-old.csv`` (baseline rows)
    and ``<run_id>-new.csv`` (records), the diff reads them, and the plan goes to
    ``<run_id>-plan.csv``.
    """
    skip = set(exclude)
    ids = [i for i in db.records.dirty_ids() if i not in skip]
    if not ids:
        return []
    old: Iterable[FileRecord] = db.records.rows_of(ids, "baseline")
    new: Iterable[FileRecord] = db.records.rows_of(ids, "files")
    if csv is not None:
        old = CSVProcessor.iter_records(csv.export(old, name=f"{run_id}-old"))
        new = CSVProcessor.iter_records(csv.export(new, name=f"{run_id}-new"))
    plan = plan_operations(list(diff_records(old, new)))
    if csv is not None:
        write_operations(plan, csv.export_dir / f"{run_id}-plan.csv")
    return db.operations.add(run_id, plan)


def listing_change(summary: ObjectSummary, record: FileRecord | None) -> str | None:
    """What a listed object needs, given its record: ``create``, ``update`` (other content),
    ``refresh`` (same content, newer object: its metadata may have changed), or None."""
    if record is None:
        return "create"
    if record.etag != summary.etag or record.size != summary.size:
        return "update"
    if record.last_modified != summary.last_modified:
        return "refresh"
    return None


def plan_page(db: DatabaseManager, run_id: str, page: list[ObjectSummary], *,
              then: Callable[[Mapping[str, int]], None] | None = None,
              rules: ObjectFilter = EVERYTHING) -> PlannedBatch:
    """Plan one listing page: its new and changed objects that ``rules`` select become
    records and operations, stored in one transaction with whatever ``then`` writes (the
    listing's position), given what the page left alone, by reason.

    An object the rules leave out is only counted: if it was synced under earlier rules, the
    next reconcile deletes it from the file manager (under the delete guard)."""
    skipped: Counter[str] = Counter()
    skipped_keys: list[tuple[str, str]] = []
    wanted: list[ObjectSummary] = []
    for summary in page:
        reason = unsyncable(summary.key, summary.path, summary.size)
        if reason is None:
            left_out = rules.skip_reason(summary.path, summary.size)
            if left_out is None:
                wanted.append(summary)
            else:
                skipped[left_out] += 1
                skipped_keys.append((summary.key, left_out))
            continue
        if reason[0] == "invalid_key":
            logger.warning("skipping key %r: not a valid path, %s", summary.key, reason[1])
        skipped[reason[0]] += 1
        skipped_keys.append((summary.key, reason[1]))
    records = db.records.lookup([s.path for s in wanted])
    changed = []
    for summary in wanted:
        if listing_change(summary, records.get(summary.path)) is None:
            skipped["unchanged"] += 1
            continue
        # Permissions are in the object's metadata, which a listing does not carry: left
        # unknown (''), they are read from the object when it is delivered.
        changed.append((summary.path, summary.size, summary.etag, summary.last_modified, ""))
    with db.transaction():
        ids = list(db.records.upsert_many(changed).values())
        plan = list(diff_records(db.records.rows_of(ids, "baseline"), db.records.rows_of(ids, "files")))
        stored = db.operations.add(run_id, plan)
        if then is not None:
            then(skipped)
    return PlannedBatch(stored, skipped, skipped_keys)
