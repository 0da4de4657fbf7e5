"""Renames told by their content (SPEC §5): S3 has no rename, so a folder renamed in a console
or with ``aws s3 mv`` reaches the service as a copy and a delete per object. Within one replay,
an object created with the size and eTag of a record deleted in the same replay is that record
moved: it keeps the record's id, and the plan gets a ``moveFile`` instead of an upload (as
rclone's ``--track-renames`` pairs files by hash).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sync_service.models.data_models import FileRecord
from sync_service.store.database_manager import DatabaseManager

logger = logging.getLogger(__name__)


def pair_renames(created: Iterable[FileRecord],
                 deleted: Iterable[FileRecord]) -> list[tuple[FileRecord, FileRecord]]:
    """``(created, deleted)`` pairs of equal size and eTag, each record in one pair at most.

    Deterministic: created records in path order; among equal candidates, one with the same
    file name first, then the first by path. Records whose content is not known (no eTag)
    never pair.
    """
    candidates: dict[tuple[int, str], list[FileRecord]] = {}
    for record in sorted(deleted, key=lambda r: r.path):
        if record.etag:
            candidates.setdefault((record.size, record.etag), []).append(record)
    pairs = []
    for record in sorted(created, key=lambda r: r.path):
        waiting = candidates.get((record.size, record.etag)) if record.etag else None
        if not waiting:
            continue
        name = record.path.rsplit("/", 1)[-1]
        chosen = next((d for d in waiting if d.path.rsplit("/", 1)[-1] == name), waiting[0])
        waiting.remove(chosen)
        pairs.append((record, chosen))
    return pairs


def adopt_renames(db: DatabaseManager, created_ids: Iterable[int],
                  deleted: Iterable[FileRecord]) -> set[int]:
    """Give each created record that pairs with a deleted one the deleted record's id; returns
    the ids whose records changed."""
    pairs = pair_renames(db.records.rows_of(created_ids, "files"), deleted)
    changed: set[int] = set()
    with db.transaction():
        for created, original in pairs:
            db.records.adopt(created, original)
            changed.add(original.id)
            logger.info("%r is %r moved (same size and eTag): a move, not an upload",
                        created.path, original.path)
    return changed
