"""Finding drift between the bucket and the records: objects changed or deleted while no event
said so. The listing is compared page by page; paths seen are kept in a temporary SQLite table,
so memory stays flat and the listing order does not matter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sync_service.clients.storage.base import ObjectStore
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


def find_drift(s3: ObjectStore, db: DatabaseManager) -> Drift:
    """Compare the listing with the records."""
    drift = Drift()
    db.records.start_scan()
    for page in s3.iter_pages():
        valid = [s for s in page if unsyncable(s.key, s.path, s.size) is None]
        drift.skipped += len(page) - len(valid)
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
