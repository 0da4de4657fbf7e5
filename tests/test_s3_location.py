"""Where the bucket is, as pure functions: the region an S3 answer names, the addressing style,
the URLs; and the one region a process shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.credentials import RefreshableCredentials

from sync_service.clients.s3_data import S3DataPath
from sync_service.clients.s3_location import (
    BucketLocation,
    BucketRegion,
    region_named,
    uses_path_style,
    wrong_region,
)
from sync_service.clients.s3_manager import S3Manager
from sync_service.models.config import SyncConfig
from tests.helpers.aws_region_proxy import malformed

PERMANENT_REDIRECT = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code>'
                      b"<Message>The bucket you are attempting to access must be addressed using the "
                      b"specified endpoint.</Message><Bucket>b</Bucket>"
                      b"<Endpoint>b.s3.amazonaws.com</Endpoint></Error>")


@pytest.mark.parametrize(("status", "headers", "body", "expected"), [
    # HEAD bucket (any status): the header
    (200, {"x-amz-bucket-region": "eu-west-1"}, b"", "eu-west-1"),
    (403, {"X-Amz-Bucket-Region": "ap-southeast-2"}, b"", "ap-southeast-2"),
    # a HEAD signed for the wrong region: 400 with the header and no body
    (400, {"x-amz-bucket-region": "eu-west-1"}, b"", "eu-west-1"),
    # a GET signed for the wrong region: AWS's body, with and without the header
    (400, {"x-amz-bucket-region": "eu-west-1"}, malformed("us-east-1", "eu-west-1"), "eu-west-1"),
    (400, {}, malformed("us-east-1", "eu-central-1"), "eu-central-1"),
    # a server that gives only the message
    (400, {}, b"<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is "
              b"malformed; the region 'us-east-1' is wrong; expecting 'eu-west-3'</Message></Error>",
     "eu-west-3"),
    # a 301 PermanentRedirect: the header names it (the body's endpoint may not)
    (301, {"x-amz-bucket-region": "us-west-2"}, PERMANENT_REDIRECT, "us-west-2"),
])
def test_the_region_an_answer_names(status: int, headers: dict[str, str], body: bytes, expected: str) -> None:
    assert region_named(headers, body) == expected
    elsewhere = expected if status in (301, 400) else None  # a 200 or 403 is no wrong-region answer
    assert wrong_region(status, headers, body, signed_for="us-east-1") == elsewhere


@pytest.mark.parametrize(("status", "headers", "body"), [
    (301, {}, PERMANENT_REDIRECT),  # names no region
    (400, {"x-amz-bucket-region": "us-east-1"}, b"<Error><Code>InvalidArgument</Code></Error>"),  # ours
    (403, {"x-amz-bucket-region": "eu-west-1"}, b"<Error><Code>AccessDenied</Code></Error>"),
    (500, {"x-amz-bucket-region": "eu-west-1"}, b""),
    (400, {"x-amz-bucket-region": "not a region!"}, b""),
    (400, {}, b"<Error><Region>../../etc</Region></Error>"),
])
def test_answers_that_do_not_say_the_bucket_is_elsewhere(status: int, headers: dict[str, str], body: bytes) -> None:
    assert wrong_region(status, headers, body, signed_for="us-east-1") is None


@pytest.mark.parametrize(("addressing", "bucket", "endpoint", "path_style"), [
    ("auto", "customer-bucket", "", False),  # AWS: virtual-hosted
    ("auto", "customer-bucket", "https://s3.eu-west-1.amazonaws.com", False),
    ("auto", "customer-bucket", "https://s3.cn-north-1.amazonaws.com.cn", False),
    ("auto", "customer.bucket.example", "", True),  # dotted: the wildcard certificate fails
    ("auto", "Legacy_Bucket", "", True),  # not a DNS name
    ("auto", "customer-bucket", "http://127.0.0.1:9000", True),  # custom endpoint: path-style
    ("auto", "customer-bucket", "https://minio.example.com", True),
    ("virtual", "customer-bucket", "https://minio.example.com", False),  # as asked
    ("path", "customer-bucket", "", True),
])
def test_addressing_style(addressing: str, bucket: str, endpoint: str, path_style: bool) -> None:
    assert uses_path_style(addressing, bucket, endpoint) is path_style


def test_urls_follow_the_addressing_and_the_learnt_region() -> None:
    region = BucketRegion()
    virtual = BucketLocation("customer-bucket", region=region)
    dotted = BucketLocation("a.b", region=region)
    custom = BucketLocation("customer-bucket", endpoint="http://127.0.0.1:9000/", region=region)
    custom_virtual = BucketLocation("customer-bucket", endpoint="https://minio.example.com",
                                    path_style=False, region=region)

    assert virtual.url_of("docs/a b+c~.txt") == \
        "https://customer-bucket.s3.us-east-1.amazonaws.com/docs/a%20b%2Bc~.txt"
    assert virtual.bucket_url() == "https://customer-bucket.s3.us-east-1.amazonaws.com/"
    assert dotted.url_of("k") == "https://s3.us-east-1.amazonaws.com/a.b/k"
    assert dotted.bucket_url() == "https://s3.us-east-1.amazonaws.com/a.b"
    assert custom.url_of("k") == "http://127.0.0.1:9000/customer-bucket/k"
    assert custom.bucket_url() == "http://127.0.0.1:9000/customer-bucket"
    assert custom_virtual.url_of("k") == "https://customer-bucket.minio.example.com/k"

    assert region.learn("eu-west-1") is True
    assert virtual.url_of("k") == "https://customer-bucket.s3.eu-west-1.amazonaws.com/k"
    assert dotted.url_of("k") == "https://s3.eu-west-1.amazonaws.com/a.b/k"
    assert custom.url_of("k") == "http://127.0.0.1:9000/customer-bucket/k"


def test_a_configured_region_is_never_replaced_by_what_answers_say() -> None:
    unset = BucketRegion()
    assert (unset.name, unset.explicit, unset.learnt) == ("us-east-1", False, None)
    assert unset.learn("not a region") is False and unset.learnt is None
    assert unset.learn("eu-west-1") is True and unset.name == "eu-west-1"
    assert unset.learn("eu-west-1") is False  # known already

    configured = BucketRegion("us-east-1")
    assert configured.learn("eu-west-1") is False
    assert configured.name == "us-east-1"
    assert "eu-west-1" in configured.mismatch("eu-west-1") and "CUSTOMER_S3_REGION" in configured.mismatch("x")


def test_refreshable_credentials_are_read_afresh_for_each_signature() -> None:
    # given credentials that expire within botocore's mandatory refresh window
    issued = iter(range(1, 10))

    def refresh() -> dict[str, str]:
        n = next(issued)
        return {"access_key": f"ASIA{n}", "secret_key": f"secret-{n}", "token": f"token-{n}",
                "expiry_time": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()}

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    path = S3DataPath(BucketLocation("b", endpoint="http://127.0.0.1:9"), credentials=credentials)

    # when two requests are signed: then each carries the credentials current at its signature
    first = path.signed_headers("GET", path.url_of("k"))
    second = path.signed_headers("GET", path.url_of("k"))
    assert "Credential=ASIA2/" in first["Authorization"] and first["X-Amz-Security-Token"] == "token-2"
    assert "Credential=ASIA3/" in second["Authorization"] and second["X-Amz-Security-Token"] == "token-3"


def test_without_keys_both_paths_share_the_credential_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIACHAIN", "AWS_SECRET_ACCESS_KEY": "chain-secret",
                        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
        monkeypatch.setenv(name, value)
    config = SyncConfig.from_env({"CUSTOMER_S3_BUCKET": "customer-bucket"}, env_file=None)

    s3 = S3Manager.from_config(config)

    assert s3.data.credentials is not None
    assert s3.data.credentials.get_frozen_credentials().access_key == "AKIACHAIN"
    assert s3.data.credentials is s3.client._request_signer._credentials  # one refresh for both
    assert s3.data.url_of("k") == "https://customer-bucket.s3.us-east-1.amazonaws.com/k"
    assert not s3.data.region.explicit
