"""``check``: where the bucket, the records and the file manager disagree. Pure: it compares
what the caller read; ``SyncService.check`` does the reading."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sync_service.clients.file_listing import ListedFile
from sync_service.models.data_models import FileRecord, ObjectSummary

#: The kinds of difference, in the order they are printed.
KINDS = {
    "not_recorded": "in the bucket, no record (an event was missed: reconcile repairs it)",
    "not_in_bucket": "recorded, gone from the bucket (reconcile deletes it)",
    "changed_in_bucket": "size or etag in the bucket differs from the record",
    "missing_in_file_manager": "recorded, not in the file manager",
    "unknown_in_file_manager": "in the file manager, not recorded",
    "size_differs": "the file manager holds another size than recorded",
    "permissions_differ": "the file manager holds other permissions than recorded",
}


@dataclass(frozen=True)
class Difference:
    """One path where two of the three sides disagree."""

    kind: str
    path: str
    detail: str = ""


@dataclass
class CheckResult:
    """The differences, and what each side holds."""

    differences: list[Difference]
    bucket_objects: int
    records: int
    file_manager_files: int | None
    pending_operations: int = 0

    @property
    def consistent(self) -> bool:
        """True when the three sides agree."""
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        counts: dict[str, int] = {}
        for difference in self.differences:
            counts[difference.kind] = counts.get(difference.kind, 0) + 1
        return {"consistent": self.consistent, "bucket_objects": self.bucket_objects,
                "records": self.records, "file_manager_files": self.file_manager_files,
                "pending_operations": self.pending_operations, "counts": counts,
                "differences": [asdict(d) for d in self.differences]}


def compare(objects: Iterable[ObjectSummary], records: Iterable[FileRecord],
            files: Mapping[str, ListedFile] | None) -> CheckResult:
    """The differences between the bucket's syncable objects, the records and (when it can
    list them) the file manager's files. ``objects`` and ``records`` come ordered by path
    (S3's byte order): they are merged as two sorted streams, so memory holds the differences
    and the file manager's listing, not the bucket or the records."""
    found: list[Difference] = []
    listed = iter(sorted(files)) if files is not None else iter(())
    next_listed = next(listed, None)
    in_bucket = recorded = 0

    def against_file_manager(record: FileRecord) -> None:
        nonlocal next_listed
        if files is None:
            return
        while next_listed is not None and next_listed < record.path:
            found.append(Difference("unknown_in_file_manager", next_listed))
            next_listed = next(listed, None)
        if next_listed != record.path:
            found.append(Difference("missing_in_file_manager", record.path))
            return
        next_listed = next(listed, None)
        held = files[record.path]
        if held.size != record.size:
            found.append(Difference("size_differs", record.path,
                                    f"file manager {held.size} B, record {record.size} B"))
        if record.permissions and held.permissions != record.permissions:
            found.append(Difference("permissions_differ", record.path,
                                    f"file manager {held.permissions or '(none)'}, "
                                    f"record {record.permissions}"))

    bucket, rows = iter(objects), iter(records)
    summary, record = next(bucket, None), next(rows, None)
    while summary is not None or record is not None:
        if record is None or (summary is not None and summary.path < record.path):
            assert summary is not None
            found.append(Difference("not_recorded", summary.path))
            in_bucket += 1
            summary = next(bucket, None)
            continue
        recorded += 1
        against_file_manager(record)
        if summary is None or record.path < summary.path:
            found.append(Difference("not_in_bucket", record.path))
        else:
            in_bucket += 1
            if (record.size, record.etag) != (summary.size, summary.etag):
                found.append(Difference("changed_in_bucket", record.path,
                                        f"bucket {summary.size} B {summary.etag}, "
                                        f"record {record.size} B {record.etag}"))
            summary = next(bucket, None)
        record = next(rows, None)
    while next_listed is not None:
        found.append(Difference("unknown_in_file_manager", next_listed))
        next_listed = next(listed, None)
    order = list(KINDS)
    found.sort(key=lambda d: (order.index(d.kind), d.path))
    return CheckResult(found, in_bucket, recorded, None if files is None else len(files))
