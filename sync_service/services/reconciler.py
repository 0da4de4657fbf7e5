"""Finding drift between the bucket and the records: objects changed or deleted while no event
said so. The listing is compared page by page; paths seen are kept in a temporary SQLite table,
so memory stays flat and the listing order does not matter.

The bucket is seen through the filter rules: an object they leave out counts as not there, so
a record of one (synced under earlier rules, or renamed into an excluded name) is deleted.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from sync_service.clients.storage.base import ObjectStore
from sync_service.services.database_manager import DatabaseManager
from sync_service.services.filters import EVERYTHING, ObjectFilter
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
    db.records.start_scan()
    for page in s3.iter_pages():
        valid = []
        for summary in page:
            unfit = unsyncable(summary.key, summary.path, summary.size)
            reason = unfit[0] if unfit else rules.skip_reason(summary.path, summary.size)
            if reason is None:
                valid.append(summary)
            else:
                drift.skipped[reason] += 1
        records = db.records.lookup([s.path for s in valid])
        for summary in valid:
            record = records.get(summary.path)
            if record is None:
                drift.created.append(summary.path)
            elif (record.etag, record.size, record.last_modified) != (
                    summary.etag, summary.size, summary.last_modified):
                drift.changed.append(summary.path)
        db.records.saw(s.path for s in valid)
    drift.deleted = db.records.unseen()
    return drift
