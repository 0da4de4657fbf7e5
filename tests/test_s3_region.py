"""A bucket in another AWS region, with no region configured: the region is learnt from the
bucket's answers and used by the listing, the data path and ``status`` alike. The S3 server is
moto behind ``AwsRegionProxy``, which answers as AWS does for a bucket in eu-west-1."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest

from devtools.local_servers import ACCESS_KEY, SECRET_KEY, MotoS3
from sync_service.clients.s3_data import S3DataPath
from sync_service.clients.s3_location import BucketLocation, BucketRegion
from sync_service.clients.s3_manager import S3Manager
from sync_service.errors import ObjectError
from sync_service.models.config import SyncConfig
from tests.helpers.aws_region_proxy import AwsRegionProxy
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_mirrors, report_of, spool

REGION = "eu-west-1"


@pytest.fixture
def proxy(moto_s3: MotoS3) -> Iterator[AwsRegionProxy]:
    with AwsRegionProxy(moto_s3.endpoint, REGION) as running:
        yield running


def test_no_region_configured_syncs_and_checks_a_bucket_in_another_region(
        cli: Cli, bucket: Bucket, api: Api, proxy: AwsRegionProxy) -> None:
    # given a bucket "in eu-west-1" and no CUSTOMER_S3_REGION
    objects = {"a.txt": b"a", "docs/b c.txt": b"bc" * 100, "deep/x/y/z.bin": bytes(range(256)) * 64}
    for key, body in objects.items():
        bucket.put(key, body)
    bucket.put("shared.txt", b"s", {"read": ["ann"]})
    assert "CUSTOMER_S3_REGION" not in cli.full_env()
    cli.env["CUSTOMER_S3_ENDPOINT"] = proxy.endpoint

    # when an initial sync runs: then every object arrives
    initial = cli.run("initial-sync")
    assert initial.returncode == 0, initial.stderr
    assert report_of(initial)["failed"] == 0 and report_of(initial)["succeeded"] == 4
    assert_mirrors(api, bucket, {"shared.txt": {"read": ["ann"]}})
    # the default region was tried and refused, then learnt: no object was read without it
    assert proxy.refused and {signed for _, _, signed in proxy.refused} == {"us-east-1"}
    assert not [p for _, p, _ in proxy.refused if p.startswith(f"/{bucket.name}/")]  # no object request
    refused_before = len(proxy.refused)

    # when an incremental sync applies events (a new process: it learns the region again)
    bucket.put("new.txt", b"new")
    bucket.put("a.txt", b"a, changed")
    spool(cli, "001", {"event_id": "e1", "type": "create", "path": "new.txt"},
          {"event_id": "e2", "type": "create", "path": "a.txt"})
    incremental = cli.run("incremental-sync")
    assert incremental.returncode == 0, incremental.stderr
    assert report_of(incremental)["events_applied"] == 2 and report_of(incremental)["failed"] == 0
    assert_mirrors(api, bucket, {"shared.txt": {"read": ["ann"]}})
    # one HEAD of the bucket learnt it: the events' HEADs and the GETs were signed right
    assert [(m, p) for m, p, _ in proxy.refused[refused_before:]] == [("HEAD", f"/{bucket.name}")]

    # then status says S3 answers
    status = cli.run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"^\s+s3\s+ok", status.stdout, re.MULTILINE), status.stdout


def test_a_wrong_region_configured_fails_status_and_check_naming_the_right_one(
        cli: Cli, bucket: Bucket, api: Api, proxy: AwsRegionProxy) -> None:
    bucket.put("a.txt", b"a")
    cli.env.update(CUSTOMER_S3_ENDPOINT=proxy.endpoint, CUSTOMER_S3_REGION="us-east-1")

    status = cli.run("status")

    assert status.returncode == 1
    s3_line = next(line for line in status.stdout.splitlines() if line.strip().startswith("s3 "))
    assert "FAILED" in s3_line and REGION in s3_line and "CUSTOMER_S3_REGION" in s3_line
    check = cli.run("check")
    assert check.returncode == 1 and REGION in check.stderr


def test_the_data_path_signs_with_the_credential_chain_when_no_keys_are_given(
        cli: Cli, bucket: Bucket, api: Api, proxy: AwsRegionProxy) -> None:
    # given no CUSTOMER_S3_* keys, and keys in the environment variables of the AWS chain
    bucket.put("a.txt", b"a")
    chain = {"AWS_ACCESS_KEY_ID": "AKIACHAINEXAMPLE", "AWS_SECRET_ACCESS_KEY": "chain-secret",
             "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    cli.env.update(CUSTOMER_S3_ENDPOINT=proxy.endpoint, CUSTOMER_S3_ACCESS_KEY="",
                   CUSTOMER_S3_SECRET_KEY="", **chain)

    result = cli.run("initial-sync")

    assert result.returncode == 0, result.stderr
    assert set(api.files()) == {"a.txt"}
    gets = [key for method, path, key in proxy.signed if method == "GET" and path.endswith("/a.txt")]
    assert gets == ["AKIACHAINEXAMPLE"]
    assert "chain-secret" not in result.stdout + result.stderr


def data_path(bucket: Bucket, endpoint: str, region: BucketRegion) -> S3DataPath:
    location = BucketLocation(bucket.name, endpoint=endpoint, path_style=True, region=region)
    return S3Manager(bucket.client, bucket.name,
                     data=S3DataPath(location, credentials=bucket.client._request_signer._credentials,
                                     max_attempts=3)).data


def test_a_get_refused_for_its_region_mid_run_is_sent_once_more_signed_right(
        bucket: Bucket, proxy: AwsRegionProxy) -> None:
    bucket.put("a.txt", b"hello")
    path = data_path(bucket, proxy.endpoint, BucketRegion())
    path.asked_bucket = True  # as if the bucket had named no region when the session opened

    async def read() -> bytes:
        async with path.connect() as session:
            meta = await session.head("a.txt")  # a HEAD: a 400 with the header, no body
            obj = await session.open("a.txt")
            body = b"".join([chunk async for chunk in obj.chunks()])
            obj.close()
            assert meta.size == len(body)
            return body

    assert asyncio.run(read()) == b"hello"
    assert path.region.name == REGION
    assert proxy.refused == [("HEAD", f"/{bucket.name}/a.txt", "us-east-1")]
    assert proxy.passed[-2:] == [("HEAD", f"/{bucket.name}/a.txt"), ("GET", f"/{bucket.name}/a.txt")]


def test_a_get_refused_for_a_configured_region_fails_at_once_naming_the_right_one(
        bucket: Bucket, proxy: AwsRegionProxy) -> None:
    bucket.put("a.txt", b"hello")
    path = data_path(bucket, proxy.endpoint, BucketRegion("us-east-1"))

    with pytest.raises(ObjectError, match=f"the bucket is in {REGION}, not in us-east-1"):
        asyncio.run(_open(path, "a.txt"))

    assert proxy.refused == [("GET", f"/{bucket.name}/a.txt", "us-east-1")]  # no retries
    assert path.region.name == "us-east-1"


async def _open(path: S3DataPath, key: str) -> None:
    async with path.connect() as session:
        (await session.open(key)).close()



def manager_through(proxy: AwsRegionProxy, bucket: Bucket) -> S3Manager:
    """A manager built as the commands build it, with no region configured."""
    return S3Manager.from_config(SyncConfig.from_env({
        "CUSTOMER_S3_ENDPOINT": proxy.endpoint, "CUSTOMER_S3_BUCKET": bucket.name,
        "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY, "CUSTOMER_S3_SECRET_KEY": SECRET_KEY}, env_file=None))


def test_what_the_listing_learns_the_data_path_uses_and_back(bucket: Bucket, proxy: AwsRegionProxy) -> None:
    bucket.put("a.txt", b"a")
    # given a listing that botocore had to redirect: the data path reads with its region
    listed = manager_through(proxy, bucket)
    assert [s.path for page in listed.iter_pages() for s in page] == ["a.txt"]
    assert listed.data.region.learnt == REGION and len(proxy.refused) == 1
    asyncio.run(_open(listed.data, "a.txt"))
    assert len(proxy.refused) == 1  # no HEAD of the bucket to ask, no GET refused

    # given a data path that learnt it first (status): the listing's first request is signed right
    checked = manager_through(proxy, bucket)
    checked.check()
    refused = len(proxy.refused)
    assert [s.path for page in checked.iter_pages() for s in page] == ["a.txt"]
    assert len(proxy.refused) == refused
