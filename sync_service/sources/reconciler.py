"""Finding drift between the bucket and the records: objects changed or deleted while no event
said so. The listing (in key order, its folders listed several at once) and the records (read
by path in batches, byte order on both databases, which is S3's) are merged as two sorted
streams: no query per object or per page, and memory flat in the bucket's size.

The bucket is seen through the filter rules: an object they leave out counts as not there, so
a record of one (synced under earlier rules, or renamed into an excluded name) is deleted.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from sync_service.clients.ordered_listing import iter_sorted_pages
from sync_service.clients.storage.base import ObjectStore
from sync_service.planning.filters import EVERYTHING, ObjectFilter
from sync_service.store.database_manager import DatabaseManager
from sync_service.utils.paths import unsyncable


@dataclass
class Drift:
    """What differs between the bucket and the records."""

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # objects left alone, by reason
    held: list[str] = field(default_factory=list)

    def as_events(self, run_id: str) -> list[str]:
        """The drift as native events, to be applied like any other."""
        events = [{"type": "create", "path": p} for p in (*self.created, *self.changed)]
        events += [{"type": "delete", "path": p} for p in self.deleted]
        return [json.dumps({"event_id": f"{run_id}:{n}", **e}, ensure_ascii=False)
                for n, e in enumerate(events)]


def find_drift(s3: ObjectStore, db: DatabaseManager, rules: ObjectFilter = EVERYTHING) -> Drift:
    """Compare the listing, as ``rules`` select it, with the records."""
    drift = Drift()
    records = db.records.iter_by_path()
    record = next(records, None)
    for page in iter_sorted_pages(s3):
        valid = []
        for summary in page:
            unfit = unsyncable(summary.key, summary.path, summary.size)
            reason = unfit[0] if unfit else rules.skip_reason(summary.path, summary.size)
            if reason is None:
                valid.append(summary)
            else:
                drift.skipped[reason] += 1
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
