"""The data path's SigV4 signer gives the same signature as botocore's, and real servers accept it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sync_service.clients.s3_data import http_date_iso
from sync_service.clients.sigv4 import BodilessSigner
from sync_service.models.data_models import iso_utc
from tests.helpers.waiting import wait_for

SIGNED = ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token")


def botocore_headers(method: str, url: str, credentials: Credentials, region: str) -> dict[str, str]:
    request = AWSRequest(method=method, url=url)
    S3SigV4Auth(credentials.get_frozen_credentials(), "s3", region).add_auth(request)
    return {name: request.headers[name] for name in SIGNED if name in request.headers}


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9000/bucket/plain.txt",
    "http://127.0.0.1:9000/bucket/a%20folder/caf%C3%A9%20%E2%82%AC/%2B%26%3D.bin",
    "http://minio:80/bucket/key",
    "https://bucket.s3.eu-west-1.amazonaws.com/deep/key~name",
    "https://s3.example.com:443/bucket/k",
    "https://s3.example.com:8443/bucket/k",
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("token", [None, "session/token+="])
def test_same_headers_as_botocore(url: str, method: str, token: str | None) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    expected = botocore_headers(method, url, credentials, "eu-west-1")
    moment = datetime.strptime(expected["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    ours = BodilessSigner(credentials, "eu-west-1").headers(method, url, now=moment)

    assert ours == expected


def test_the_signing_key_follows_the_day_and_the_secret() -> None:
    credentials = Credentials("AKID", "first-secret")
    signer = BodilessSigner(credentials, "us-east-1")
    url = "http://127.0.0.1:1/b/k"
    day_one = signer.headers("GET", url, now=datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC))
    day_two = signer.headers("GET", url, now=datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC))
    assert "20261126/us-east-1/s3/aws4_request" in day_two["Authorization"]
    for moment, headers in ((datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC), day_one),
                            (datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC), day_two)):
        assert headers == botocore_signed_at(moment, credentials, url)
    rotated = Credentials("AKID", "second-secret")
    signer.credentials = rotated
    moment = datetime(2026, 11, 26, 0, 0, 2, tzinfo=UTC)
    assert signer.headers("GET", url, now=moment) == botocore_signed_at(moment, rotated, url)


def botocore_signed_at(moment: datetime, credentials: Credentials, url: str) -> dict[str, str]:
    """botocore's headers for ``url`` signed at ``moment`` (its clock, pinned)."""
    from unittest import mock

    with mock.patch("botocore.auth.get_current_datetime", return_value=moment.replace(tzinfo=None)):
        return botocore_headers("GET", url, credentials, "us-east-1")


@pytest.mark.parametrize("value", ["Mon, 07 Dec 2026 06:00:00 GMT", "Tue, 29 Feb 2028 23:59:59 GMT",
                                   "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
                                   "Mon, 07 Dec 2026 06:00:00 +0000"])
def test_a_get_answers_last_modified_reads_as_the_standard_librarys_parser_reads_it(value: str) -> None:
    """The GET's Last-Modified is compared with the listing's: the fast path and the standard
    library's parser must agree on every date form HTTP allows."""
    assert http_date_iso(value) == iso_utc(parsedate_to_datetime(value))


def test_each_signature_carries_the_second_it_was_made_in() -> None:
    """X-Amz-Date is formatted once a second: never a second that has passed."""
    signer = BodilessSigner(Credentials("AKID", "SECRET"), "eu-west-1")

    def signed_now() -> bool:
        before = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        stamp = signer.headers("GET", "https://b.s3.amazonaws.com/k")["X-Amz-Date"]
        assert before <= stamp <= time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return stamp != first

    first = signer.headers("GET", "https://b.s3.amazonaws.com/k")["X-Amz-Date"]
    wait_for(signed_now, timeout=5)  # the next second's signatures, checked as they come
