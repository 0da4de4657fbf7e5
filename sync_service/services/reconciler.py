"""Finding drift between the bucket and the records: objects changed or deleted while no event
said so. The listing (in key order, its folders listed several at once) and the records (read
by path in batches, byte order on both databases, which is S3's) are merged as two sorted
streams: no query per object or per page, and memory flat in the bucket's size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sync_service.clients.ordered_listing import iter_sorted_pages
from sync_service.clients.s3_manager import S3Manager
from sync_service.services.database_manager import DatabaseManager
from sync_service.utils.paths import unsyncable


@dataclass
class Drift:
    """What differs between the bucket and the records."""

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: int = 0
    held: list[str] = field(default_factory=list)

    def as_events(self, run_id: str) -> list[str]:
        """The drift as native events, to be applied like any other."""
        events = [{"type": "create", "path": p} for p in (*self.created, *self.changed)]
        events += [{"type": "delete", "path": p} for p in self.deleted]
        return [json.dumps({"event_id": f"{run_id}:{n}", **e}, ensure_ascii=False)
                for n, e in enumerate(events)]


def find_drift(s3: S3Manager, db: DatabaseManager) -> Drift:
    """Compare the listing with the records."""
    drift = Drift()
    records = db.records.iter_by_path()
    record = next(records, None)
    for page in iter_sorted_pages(s3):
        valid = [s for s in page if unsyncable(s.key, s.path, s.size) is None]
        drift.skipped += len(page) - len(valid)
        for summary in valid:
            path = summary.path
            while record is not None and record.path < path:
                drift.deleted.append(record.path)  # recorded, and the listing went past it
                record = next(records, None)
            if record is None or record.path != path:
                drift.created.append(path)
                continue
            if (record.etag, record.size, record.last_modified) != (
                    summary.etag, summary.size, summary.last_modified):
                drift.changed.append(path)
            record = next(records, None)
    while record is not None:
        drift.deleted.append(record.path)
        record = next(records, None)
    return drift
