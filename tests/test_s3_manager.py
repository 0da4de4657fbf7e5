"""S3Manager against two real S3 servers: moto and rclone serve s3 (one contract, both backends)."""

from __future__ import annotations

import asyncio
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from sync_service.clients.s3_data import S3DataSession
from sync_service.clients.s3_manager import S3Manager, _parse_page
from sync_service.errors import ObjectError, ObjectGone, StorageError
from sync_service.models.data_models import iso_utc
from sync_service.utils.permissions import permissions_from_metadata
from tests.helpers.harness import Bucket

T = TypeVar("T")


def on(s3: S3Manager, call: Callable[[S3DataSession], Awaitable[T]]) -> T:
    """Use the data path in a session of its own event loop."""
    async def main() -> T:
        async with s3.data.connect() as session:
            return await call(session)
    return asyncio.run(main())


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


def test_one_key_probes_find_the_first_entry_after_each_point(any_bucket: Bucket) -> None:
    # given keys and a folder with names in and past ASCII
    for key in ("p/a/1.txt", "p/b.txt", "p/写真/1.jpg", "p/文件.txt", "p/\U0001f389.txt"):
        any_bucket.put(key, b"x")
    s3 = S3Manager(any_bucket.client, any_bucket.name)
    # when the key ranges' lister probes it: the first entry after each point, none past the end
    points = ["p/", "p/a0", "p/\u4e00", "p/\u5800", "p/\U0001f300", "p/\U0001f400"]
    assert s3.first_entries("p/", points) == ["p/a/", "p/b.txt", "p/写真/", "p/文件.txt", "p/\U0001f389.txt"]
    # and without the delimiter, keys inside folders
    assert s3.first_entries("p/", ["p/a", "p/\u4e00"], delimited=False) == ["p/a/1.txt", "p/写真/1.jpg"]


def test_streaming_get_and_head_agree_with_the_listing(any_bucket: Bucket) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    any_bucket.put("big.bin", body, {"read": ["x"]})
    s3 = S3Manager(any_bucket.client, any_bucket.name)
    listed = next(iter(s3.iter_pages()))[0]

    async def get(session: S3DataSession) -> tuple[object, list[bytes], object]:
        obj = await session.open("big.bin")
        chunks = [chunk async for chunk in obj.chunks(size=1024 * 1024)]
        obj.close()
        return obj.meta, chunks, await session.head("big.bin")

    got, chunks, fetched = on(s3, get)
    head = s3.head("big.bin")

    assert b"".join(chunks) == body
    assert max(len(c) for c in chunks) <= 1024 * 1024
    assert head == got == fetched  # boto3's HEAD, and the data path's GET and HEAD agree
    assert (head.size, head.etag, head.last_modified) == (listed.size, listed.etag, listed.last_modified)
    assert permissions_from_metadata(head.metadata, key="permissions", default={}) == '{"read":["x"]}'


def test_missing_objects_and_changed_versions_are_reported(any_bucket: Bucket) -> None:
    any_bucket.put("a.txt", b"a")
    s3 = S3Manager(any_bucket.client, any_bucket.name)
    with pytest.raises(ObjectGone):
        on(s3, lambda session: session.open("missing.txt"))
    with pytest.raises(ObjectGone):
        on(s3, lambda session: session.head("missing.txt"))
    with pytest.raises(ObjectGone):
        s3.head("missing.txt")
    with pytest.raises(ObjectError, match="changed since it was listed"):
        on(s3, lambda session: session.open("a.txt", if_match="0" * 32))
    assert s3.check() >= 0


def test_missing_bucket_is_a_clear_error(bucket: Bucket) -> None:
    s3 = S3Manager(bucket.client, "no-such-bucket-here")
    with pytest.raises(StorageError, match="no-such-bucket-here"):
        list(s3.iter_pages())
    with pytest.raises(StorageError):
        s3.check()


@pytest.mark.parametrize("text", ["2026-11-25T23:33:21.000Z", "2026-11-25T23:33:21Z",
                                  "2026-11-25T23:33:21.123456+00:00", "2026-11-25T23:33:21",
                                  "Wed, 25 Nov 2026 23:33:21 GMT", "1764113601"])
def test_listing_timestamps_read_as_botocore_reads_them(text: str) -> None:
    from botocore.utils import parse_timestamp

    from sync_service.clients.s3_manager import fast_timestamp
    from sync_service.models.data_models import iso_utc

    assert iso_utc(fast_timestamp(text)) == iso_utc(parse_timestamp(text))


AWKWARD_KEYS = ("plain.txt", "a space/b+c%20d.txt", "quote\"s'&<x>.txt", "café/文件 €.txt",
                "tab\there.txt", "deep/er/still/x.bin", "\U0001f389.txt", "trailing dot./x")


def test_the_listing_read_by_the_service_is_what_botocore_reads(any_bucket: Bucket) -> None:
    """Pages are parsed here (ElementTree) rather than by botocore: every field of every key,
    and the folders, must come out as botocore's own parse gives them."""
    for n, key in enumerate(AWKWARD_KEYS):
        any_bucket.put(key, b"x" * n)
    s3 = S3Manager(any_bucket.client, any_bucket.name, page_size=3)
    ours = [(s.key, s.size, s.etag, s.last_modified) for page in s3.iter_pages() for s in page]
    theirs = [(item["Key"], item["Size"], item["ETag"].strip('"'), iso_utc(item["LastModified"]))
              for page in any_bucket.client.get_paginator("list_objects_v2").paginate(Bucket=any_bucket.name)
              for item in page.get("Contents", [])]
    assert ours == theirs and len(ours) == len(AWKWARD_KEYS)
    delimited = [f for _, page_folders, _ in s3.iter_scope("", delimited=True) for f in page_folders]
    assert delimited == ["a space/", "café/", "deep/", "trailing dot./"]


def test_a_page_is_read_with_its_names_url_decoded_only_when_the_server_encoded_them() -> None:
    with pytest.raises(ElementTree.ParseError):  # the manager turns it into a StorageError
        _parse_page(b"<html>a proxy's error page")
    page = _parse_page(b'<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>'
                       b'<Contents><Key>a+b%2Bc%E2%82%AC</Key><Size>3</Size><ETag>"e"</ETag>'
                       b'<LastModified>2026-12-07T06:00:00.123Z</LastModified></Contents>'
                       b'<NextContinuationToken>t</NextContinuationToken></ListBucketResult>')
    assert page == ([("a b+c€", 3, "e", "2026-12-07T06:00:00Z")], [], True, "t")
    raw = _parse_page(b'<ListBucketResult><CommonPrefixes><Prefix>a+b%2B/</Prefix></CommonPrefixes>'
                      b'</ListBucketResult>')
    assert raw == ([], ["a+b%2B/"], False, "")
