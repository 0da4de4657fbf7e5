"""``check``'s comparison: the bucket, the records and the file manager merged as sorted streams."""

from __future__ import annotations

from sync_service.clients.file_listing import ListedFile
from sync_service.models.data_models import FileRecord, ObjectSummary
from sync_service.sources.checker import compare


def obj(path: str, size: int = 1, etag: str = "e") -> ObjectSummary:
    return ObjectSummary(path, path, size, etag, "2026-12-03T00:00:00Z")


def rec(n: int, path: str, size: int = 1, etag: str = "e", permissions: str = '{"v":1}') -> FileRecord:
    return FileRecord(n, path, size, etag, "2026-12-03T00:00:00Z", permissions)


def test_every_kind_of_difference_is_found_in_one_pass_over_sorted_streams() -> None:
    objects = [obj("a"), obj("b", size=2), obj("d"), obj("é")]
    records = [rec(1, "a"), rec(2, "b"), rec(3, "c"), rec(5, "f"), rec(4, "é")]  # byte order
    files = {p: ListedFile(p, 1, "s", '{"v":1}') for p in ("0", "a", "c", "é", "f", "g")}
    files["a"] = ListedFile("a", 9, "s", '{"v":2}')
    del files["é"]
    result = compare(objects, records, files)
    assert [(d.kind, d.path) for d in result.differences] == [
        ("not_recorded", "d"), ("not_in_bucket", "c"), ("not_in_bucket", "f"),
        ("changed_in_bucket", "b"), ("missing_in_file_manager", "b"), ("missing_in_file_manager", "é"),
        ("unknown_in_file_manager", "0"), ("unknown_in_file_manager", "g"),
        ("size_differs", "a"), ("permissions_differ", "a")]
    assert (result.bucket_objects, result.records, result.file_manager_files) == (4, 5, 5)


def test_agreeing_sides_are_consistent_and_no_file_manager_listing_is_not_compared() -> None:
    objects = [obj("a"), obj("b")]
    records = [rec(1, "a"), rec(2, "b")]
    assert compare(objects, records, {p: ListedFile(p, 1, "s", '{"v":1}') for p in "ab"}).consistent
    assert compare(objects, records, None).file_manager_files is None
