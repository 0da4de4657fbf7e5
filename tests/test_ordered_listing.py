"""The listing in key order with its folders listed several at once: the order of one
paginated LIST, whatever mixes keys and folders."""

from __future__ import annotations

from sync_service.clients.ordered_listing import iter_sorted_pages
from sync_service.clients.s3_manager import S3Manager
from tests.helpers.harness import Bucket


def test_folders_listed_at_once_come_back_in_the_order_of_one_listing(bucket: Bucket) -> None:
    # given keys directly below the prefix and in folders, interleaved in key order ('a.txt' <
    # 'a/' < 'a0'), a folder of several pages and nested folders
    keys = ["top/a.txt", "top/a-b", *(f"top/a/{n:02d}" for n in range(11)), "top/a0", "top/b/c/d/e.txt",
            "top/b/c/f", "top/b.txt", "top/é/x", "top/z", "top/zz/1", "other/not-listed"]
    for key in keys:
        bucket.put(key, b"x")
    s3 = S3Manager(bucket.client, bucket.name, "top/", page_size=3)
    # when it is listed two folders at a time, three keys a page
    pages = list(iter_sorted_pages(s3, threads=2, pages_ahead=1))
    # then the pages hold every key below the prefix once, in S3's (byte) order
    listed = [s.key for page in pages for s in page]
    assert listed == sorted((k for k in keys if k.startswith("top/")), key=str.encode)
    assert [s.path for s in pages[0]][:1] == ["a-b"]
