"""S3Manager against two real S3 servers: moto and rclone serve s3 (one contract, both backends)."""

from __future__ import annotations

import os

import pytest

from sync_service.clients.s3_manager import S3Manager
from sync_service.errors import ObjectGone, StorageError
from sync_service.utils.permissions import permissions_from_metadata
from tests.conftest import Bucket


@pytest.fixture(params=["moto", "rclone"])
def any_bucket(request: pytest.FixtureRequest) -> Bucket:
    return request.getfixturevalue("bucket" if request.param == "moto" else "rclone_bucket")


def test_listing_is_paged_and_relative_to_the_prefix(any_bucket: Bucket) -> None:
    for n in range(7):
        any_bucket.put(f"team/{n}.txt", b"x" * n)
    any_bucket.put("elsewhere.txt", b"y")
    s3 = S3Manager(any_bucket.client, any_bucket.name, "team/", page_size=3)

    pages = list(s3.iter_pages())

    assert [len(p) for p in pages] == [3, 3, 1]
    summaries = [s for page in pages for s in page]
    assert [s.path for s in summaries] == [f"{n}.txt" for n in range(7)]
    assert [s.size for s in summaries] == list(range(7))
    assert all(s.etag and '"' not in s.etag for s in summaries)
    assert all(s.last_modified.endswith("Z") for s in summaries)


def test_streaming_get_and_head_agree_with_the_listing(any_bucket: Bucket) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    any_bucket.put("big.bin", body, {"read": ["x"]})
    s3 = S3Manager(any_bucket.client, any_bucket.name)
    listed = next(iter(s3.iter_pages()))[0]

    obj = s3.open("big.bin")
    chunks = list(obj.chunks(size=1024 * 1024))
    obj.close()
    head = s3.head("big.bin")

    assert b"".join(chunks) == body
    assert max(len(c) for c in chunks) <= 1024 * 1024
    assert (obj.meta.size, obj.meta.etag, obj.meta.last_modified) == (listed.size, listed.etag, listed.last_modified)
    assert head == obj.meta
    assert permissions_from_metadata(head.metadata, key="permissions", default={}) == '{"read":["x"]}'


def test_missing_objects_and_changed_versions_are_reported(any_bucket: Bucket) -> None:
    any_bucket.put("a.txt", b"a")
    s3 = S3Manager(any_bucket.client, any_bucket.name)
    with pytest.raises(ObjectGone):
        s3.open("missing.txt")
    with pytest.raises(ObjectGone):
        s3.head("missing.txt")
    with pytest.raises(StorageError) as changed:
        s3.open("a.txt", if_match="0" * 32)
    assert not changed.value.retryable
    assert s3.check() >= 0


def test_missing_bucket_is_a_clear_error(bucket: Bucket) -> None:
    s3 = S3Manager(bucket.client, "no-such-bucket-here")
    with pytest.raises(StorageError, match="no-such-bucket-here"):
        list(s3.iter_pages())
    with pytest.raises(StorageError):
        s3.check()
