"""Where the customer bucket is: its endpoint, its addressing style and its region.

One ``BucketRegion`` per process holds the region both S3 paths sign for: the listing client
(botocore, through ``follow_region``) and the data path (``s3_data``). When
``CUSTOMER_S3_REGION`` is set it is used as given; when it is unset the region is learnt from
the bucket's own answers, as botocore's ``S3RegionRedirectorv2`` learns it: the
``x-amz-bucket-region`` header (HEAD bucket carries it on AWS, and so do the 301 and 400 answers
to a request signed for the wrong region), else the ``<Region>`` element of a 400
``AuthorizationHeaderMalformed`` body, else the region its message expects
("the region 'us-east-1' is wrong; expecting 'eu-west-1'").

Addressing: virtual-hosted (``https://bucket.s3.region.amazonaws.com/key``) on AWS, path-style
(``https://host/bucket/key``) on a custom endpoint, and path-style on AWS for a bucket name that
is not a plain DNS label chain or holds a dot (the ``*.s3.region.amazonaws.com`` certificate
does not cover ``a.b.s3…``). ``S3_ADDRESSING=path|virtual`` overrides the choice.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from sync_service.models.config import DEFAULT_S3_REGION

REGION_HEADER = "x-amz-bucket-region"
#: Answers that may mean "signed for, or sent to, the wrong region".
WRONG_REGION_STATUSES = frozenset({301, 307, 400})
_REGION = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_REGION_ELEMENT = re.compile(rb"<Region>\s*([^<\s]+)\s*</Region>")
_EXPECTING = re.compile(rb"expecting '([^']+)'")
_DNS_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{1,61}[a-z0-9])$")
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn")


def valid_region(name: str | None) -> str | None:
    """``name`` when it reads as a region name (``eu-west-1``), else None."""
    return name if name and _REGION.match(name) else None


def region_named(headers: Mapping[str, str], body: bytes = b"") -> str | None:
    """The bucket's region as an S3 answer names it: the ``x-amz-bucket-region`` header, the
    ``<Region>`` element of an error body, or the region an ``AuthorizationHeaderMalformed``
    message expects; None when it names none."""
    for name, value in headers.items():
        if name.lower() == REGION_HEADER:
            return valid_region(value.strip())
    for pattern in (_REGION_ELEMENT, _EXPECTING):
        found = pattern.search(body)
        if found:
            return valid_region(found.group(1).decode("ascii", "replace"))
    return None


def wrong_region(status: int, headers: Mapping[str, str], body: bytes, signed_for: str) -> str | None:
    """The region to sign for instead, when the answer to a request signed for ``signed_for``
    says the bucket is elsewhere (a 301, 307 or 400 naming another region); else None."""
    if status not in WRONG_REGION_STATUSES:
        return None
    named = region_named(headers, body)
    return named if named and named != signed_for else None


def is_aws_endpoint(endpoint: str) -> bool:
    """True for no endpoint (AWS's own) and for an ``*.amazonaws.com`` endpoint."""
    host = (urlsplit(endpoint).hostname or "") if endpoint else "s3.amazonaws.com"
    return host.endswith(_AWS_HOSTS)


def uses_path_style(addressing: str, bucket: str, endpoint: str) -> bool:
    """Whether requests name the bucket in the path (``host/bucket/key``) rather than the host:
    ``addressing`` ``path`` or ``virtual`` as asked; ``auto``: path-style on a custom endpoint
    and for names a virtual host cannot carry (dots break TLS, other names break DNS)."""
    if addressing in ("path", "virtual"):
        return addressing == "path"
    return not is_aws_endpoint(endpoint) or "." in bucket or not _DNS_BUCKET.match(bucket)


class BucketRegion:
    """The region requests to the bucket are signed for: the configured one, or the one learnt
    from the bucket, or ``DEFAULT_S3_REGION`` until one is learnt. Shared by threads and event
    loops of one process."""

    def __init__(self, configured: str = "", *, fallback: str = DEFAULT_S3_REGION) -> None:
        self.configured = configured
        self.fallback = fallback
        self._learnt: str | None = None
        self._lock = threading.Lock()

    @property
    def explicit(self) -> bool:
        """True when the region was configured: it is never replaced by what answers say."""
        return bool(self.configured)

    @property
    def learnt(self) -> str | None:
        """The region learnt from the bucket's answers, if one was."""
        return self._learnt

    @property
    def name(self) -> str:
        """The region to sign for now."""
        return self.configured or self._learnt or self.fallback

    def learn(self, region: str | None) -> bool:
        """Take ``region`` from the bucket's answer, unless the region is configured; True when
        the region to sign for changed."""
        region = valid_region(region)
        if region is None or self.explicit:
            return False
        with self._lock:
            changed = region != self.name
            self._learnt = region
        return changed

    def mismatch(self, actual: str) -> str:
        """What to tell when the bucket answers that it is in ``actual``, not where it was
        configured to be."""
        return (f"the bucket is in {actual}, not in {self.configured} (CUSTOMER_S3_REGION): "
                f"set CUSTOMER_S3_REGION={actual}, or leave it unset to learn it from the bucket")


class BucketLocation:
    """The URLs of the bucket and its objects, for the region it is in now."""

    def __init__(self, bucket: str, *, endpoint: str = "", path_style: bool | None = None,
                 region: BucketRegion | None = None) -> None:
        self.bucket = bucket
        self.endpoint = endpoint.rstrip("/")
        self.path_style = uses_path_style("auto", bucket, endpoint) if path_style is None else path_style
        self.region = region or BucketRegion()

    def _root(self) -> str:
        """The bucket's URL without a trailing slash (its objects' URLs start with it)."""
        if self.endpoint:
            if self.path_style:
                return f"{self.endpoint}/{quote(self.bucket, safe='')}"
            parts = urlsplit(self.endpoint)
            return parts._replace(netloc=f"{self.bucket}.{parts.netloc}").geturl()
        host = f"s3.{self.region.name}.amazonaws.com"
        return f"https://{host}/{quote(self.bucket, safe='')}" if self.path_style \
            else f"https://{self.bucket}.{host}"

    def bucket_url(self) -> str:
        """The bucket's own URL (HEAD bucket)."""
        root = self._root()
        return root if self.path_style else root + "/"

    def url_of(self, key: str) -> str:
        """The object's URL, percent-encoded as S3 signs it."""
        return f"{self._root()}/{quote(key, safe='/~')}"


def follow_region(client: Any, region: BucketRegion) -> None:
    """Make a botocore S3 client share ``region``: it signs for the region learnt so far, and
    what its answers say about the bucket's region is learnt for the data path too.

    botocore's own redirector still follows a wrong-region answer in the client; its handler of
    ``before-endpoint-resolution`` runs after this one, so a region it was redirected to wins."""

    def sign_for_learnt(builtins: dict[str, Any], **_: Any) -> None:
        if not region.explicit and region.learnt:
            builtins["AWS::Region"] = region.learnt

    def learn_from_answer(response: Any = None, **_: Any) -> None:
        if response is None:  # a connection error: no answer to learn from
            return
        parsed = response[1]
        headers = parsed.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        region.learn(headers.get(REGION_HEADER) or parsed.get("Error", {}).get("Region"))

    client.meta.events.register_first("before-endpoint-resolution.s3", sign_for_learnt)
    client.meta.events.register("needs-retry.s3", learn_from_answer)
