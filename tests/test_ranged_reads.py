"""Large objects are read as several ranged GETs at once and arrive byte-identical, in order."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler

import pytest

from sync_service.clients.ranged_reads import RangeBody, RangedGets, windowed_chunks
from sync_service.errors import ObjectError
from tests.helpers.fault_proxy import S3Proxy, forward
from tests.helpers.harness import Api, Bucket, Cli


class RangeRecordingProxy(S3Proxy):
    """Passes every request on; keeps (key, Range header) of every GET."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.gets: list[tuple[str, str | None]] = []

    def handle(self, handler: BaseHTTPRequestHandler, path: str, body: bytes | None) -> None:
        if handler.command == "GET" and "list-type" not in handler.path:
            self.gets.append((path.rsplit("/", 1)[-1], handler.headers.get("Range")))
        content = forward(handler, self.upstream, body)
        if content is not None:
            handler.wfile.write(content)


@pytest.mark.parametrize("server", ["moto", "rclone"])
def test_an_object_over_the_threshold_arrives_whole_through_ranged_gets(
        cli: Cli, api: Api, server: str, request: pytest.FixtureRequest) -> None:
    # given an object over the (lowered) threshold and one under it, on moto's S3 or on
    # rclone serve s3 (which answers a ranged GET with 200 and its Content-Range)
    bucket: Bucket = request.getfixturevalue("bucket" if server == "moto" else "rclone_bucket")
    large, small = os.urandom(300_000), os.urandom(5_000)
    bucket.put("big.bin", large)
    bucket.put("small.bin", small)
    ranged = {"RANGED_GET_THRESHOLD": "100K", "RANGED_GET_WINDOW": "64K", "RANGED_GETS": "3"}
    if server == "moto":  # moto checks no signature, so a proxy can count the GETs
        with RangeRecordingProxy(bucket.endpoint) as proxy:
            # when an initial sync reads objects over 100 KiB in 64 KiB windows, three at once
            result = cli.run("initial-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint, **ranged)
    else:
        result = cli.run("initial-sync", CUSTOMER_S3_ENDPOINT=bucket.endpoint,
                         CUSTOMER_S3_BUCKET=bucket.name, **ranged)
    # then both arrived byte-identical
    assert result.returncode == 0, result.stderr[-3000:]
    files = api.files()
    assert files["big.bin"]["sha256"] == hashlib.sha256(large).hexdigest()
    assert files["big.bin"]["size"] == len(large)
    assert files["small.bin"]["sha256"] == hashlib.sha256(small).hexdigest()
    # and the large one was read in its five windows, the small one with one plain GET
    if server != "moto":
        return
    windows = sorted((r for key, r in proxy.gets if key == "big.bin" and r), key=lambda r: int(r[6:].split("-")[0]))
    assert windows == [f"bytes={s}-{min(s + 65536, len(large)) - 1}" for s in range(0, len(large), 65536)]
    assert [r for key, r in proxy.gets if key == "small.bin"] == [None]


class Window:
    """A fake ranged body: its bytes in small chunks after a random pause."""

    def __init__(self, data: bytes, short: bool = False) -> None:
        self.data = data[:-1] if short else data

    async def chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), 700):
            await asyncio.sleep(random.random() / 1000)
            yield self.data[start:start + 700]

    def close(self) -> None:
        pass


def test_windows_are_handed_on_in_order_with_at_most_parallel_in_flight() -> None:
    data = os.urandom(10_000)
    settings = RangedGets(threshold=1000, window=1024, parallel=3)
    opened = 0

    async def open_range(first: int, last: int) -> RangeBody:
        nonlocal opened
        opened += 1
        await asyncio.sleep(random.random() / 1000)
        return Window(data[first:last + 1])

    async def read() -> tuple[bytes, int]:
        out, most = b"", 0
        async for chunk in windowed_chunks(open_range, len(data), settings):
            out += chunk
            most = max(most, opened - len(out) // 1024)  # windows opened, not yet handed on whole
        return out, most

    out, most = asyncio.run(read())
    assert out == data
    assert most <= 3 and opened == 10


def test_a_window_that_ends_short_fails_the_read() -> None:
    data = os.urandom(5000)

    async def open_range(first: int, last: int) -> RangeBody:
        return Window(data[first:last + 1], short=first == 2048)

    async def read() -> None:
        async for _ in windowed_chunks(open_range, len(data), RangedGets(1000, 1024, 2)):
            pass

    with pytest.raises(ObjectError, match="2048-3071"):
        asyncio.run(read())
