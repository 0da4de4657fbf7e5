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
    list them) the file manager's files."""
    in_bucket = {o.path: o for o in objects}
    recorded = {r.path: r for r in records}
    found: list[Difference] = []
    for path, summary in in_bucket.items():
        record = recorded.get(path)
        if record is None:
            found.append(Difference("not_recorded", path))
        elif (record.size, record.etag) != (summary.size, summary.etag):
            found.append(Difference("changed_in_bucket", path,
                                    f"bucket {summary.size} B {summary.etag}, "
                                    f"record {record.size} B {record.etag}"))
    found += [Difference("not_in_bucket", p) for p in recorded if p not in in_bucket]
    if files is not None:
        for path, record in recorded.items():
            listed = files.get(path)
            if listed is None:
                found.append(Difference("missing_in_file_manager", path))
                continue
            if listed.size != record.size:
                found.append(Difference("size_differs", path,
                                        f"file manager {listed.size} B, record {record.size} B"))
            if record.permissions and listed.permissions != record.permissions:
                found.append(Difference("permissions_differ", path,
                                        f"file manager {listed.permissions or '(none)'}, "
                                        f"record {record.permissions}"))
        found += [Difference("unknown_in_file_manager", p) for p in files if p not in recorded]
    order = list(KINDS)
    found.sort(key=lambda d: (order.index(d.kind), d.path))
    return CheckResult(found, len(in_bucket), len(recorded),
                       None if files is None else len(files))
