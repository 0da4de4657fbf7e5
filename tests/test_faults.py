"""The fault matrix (README, Reliability): each fault forced on real servers, each case ending
with the file manager equal to the bucket and nothing applied twice."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.conftest import Api, Bucket, Cli
from tests.fault_proxy import FaultyS3Proxy
from tests.test_initial_sync import assert_api_matches_bucket, report_of, sha


def assert_nothing_applied_twice(api: Api) -> None:
    """Each upload of one content, and each other call, reached the file manager once."""
    saves = Counter((op["path"], op["idempotency_key"]) for op in api.operations() if op["op"] == "saveToDisk")
    assert all(n == 1 for n in saves.values()), saves
    keys = Counter(op["idempotency_key"] for op in api.operations())
    assert all(n == 1 for n in keys.values()), keys


def fill(bucket: Bucket) -> dict[str, bytes]:
    objects = {"a.txt": b"alpha", "docs/big.bin": os.urandom(256 * 1024), "z.txt": b"zulu"}
    for key, body in objects.items():
        bucket.put(key, body)
    return objects


# -- S3 faults, through a proxy in front of moto --------------------------------------------------

def test_s3_slowdown_with_retry_after_is_retried_and_delivered(cli: Cli, bucket: Bucket, api: Api) -> None:
    objects = fill(bucket)

    with FaultyS3Proxy(bucket.endpoint, {"docs/big.bin": ["slowdown", "slowdown"]}) as proxy:
        result = cli.run("initial-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint)

    assert result.returncode == 0, result.stderr[-3000:]
    assert proxy.applied == [("docs/big.bin", "slowdown")] * 2
    assert report_of(result)["failed"] == 0
    assert api.files()["docs/big.bin"]["sha256"] == sha(objects["docs/big.bin"])
    assert_api_matches_bucket(api, bucket, {})
    assert_nothing_applied_twice(api)


EXPECTED_CAUSE = {"reset": "reset by peer", "stall": "Timeout on reading"}


@pytest.mark.parametrize("fault", ["reset", "stall"])
def test_s3_body_broken_mid_stream_fails_that_object_alone_and_the_next_run_delivers_it(
        cli: Cli, bucket: Bucket, api: Api, fault: str) -> None:
    fill(bucket)

    with FaultyS3Proxy(bucket.endpoint, {"docs/big.bin": [fault]}, stall_s=4.0) as proxy:
        first = cli.run("initial-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint, S3_READ_TIMEOUT="1")

    assert first.returncode == 1, first.stderr[-3000:]
    assert proxy.applied == [("docs/big.bin", fault)]
    report = report_of(first)
    assert report["succeeded"] == 2 and report["failed"] == 1
    assert [f["path"] for f in report["failures"]] == ["docs/big.bin"]
    assert EXPECTED_CAUSE[fault] in report["failures"][0]["error"]
    assert set(api.files()) == {"a.txt", "z.txt"}  # no half file stored

    second = cli.run("incremental-sync")  # any later run retries what failed
    assert second.returncode == 0, second.stderr[-3000:]
    assert_api_matches_bucket(api, bucket, {})
    assert_nothing_applied_twice(api)
