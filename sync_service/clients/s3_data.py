"""The S3 data path: HEAD and streamed GET (whole, or a byte range) of single objects over
aiohttp, signed with SigV4 (``sigv4.BodilessSigner``, checked against botocore's signer).

The executor's hot path makes one GET per object; botocore's client costs milliseconds of CPU
per call, which on a few cores is the whole budget (see PERFORMANCE.md). Here a request is one
signature and one aiohttp exchange. Listing and the other control-plane calls
stay on boto3 (``S3Manager``).

Retries are the same policy as botocore's ``standard`` mode, in one loop per request: 5xx,
throttling and connection errors are tried again (``max_attempts`` in all, waiting at least
what a ``Retry-After`` asks, up to 20 s) before the body is handed over; what still fails is
an ``ObjectError`` (``ObjectGone`` for 404), so that only that object's operation fails. A
body that breaks after it was handed over is an ``ObjectError`` too: the caller decides
whether to read the object again.

The region signed for is the process's ``BucketRegion`` (``s3_location``). When it is not
configured, a session's opening asks the bucket (one HEAD, read for ``x-amz-bucket-region``)
unless the region was learnt already; an answer that names another region (a 301, or a 400
``AuthorizationHeaderMalformed``) teaches it, and the request is sent again at once, signed
for that region: once, inside the same loop, so a wrong-region answer never multiplies the
retries. With ``CUSTOMER_S3_REGION`` set, such an answer fails the request with a message
naming the bucket's region.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from types import TracebackType

import aiohttp
from botocore.credentials import Credentials
from yarl import URL

from sync_service.clients.lean_http import Answer, AnswerTooLarge, LeanPool
from sync_service.clients.s3_location import BucketLocation, region_named, wrong_region
from sync_service.clients.sigv4 import BodilessSigner
from sync_service.errors import ObjectError, ObjectGone
from sync_service.models.data_models import iso_utc
from sync_service.utils.backoff import compute_backoff, parse_retry_after

CHUNK_SIZE = 1024 * 1024
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_FACTOR_S = 0.2
MAX_BACKOFF_S = 20.0
META_PREFIX = "x-amz-meta-"


@dataclass(frozen=True)
class ObjectMeta:
    """What a HEAD or GET tells about one object."""

    key: str
    size: int
    etag: str
    last_modified: str
    metadata: dict[str, str]


class S3Object:
    """An open GET: metadata plus a body that is read once, in chunks."""

    def __init__(self, meta: ObjectMeta, response: aiohttp.ClientResponse) -> None:
        self.meta = meta
        self._response = response

    async def chunks(self, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Yield the body in chunks of at most ``size`` bytes."""
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ObjectError(f"reading {self.meta.key!r} failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Release the connection."""
        self._response.release()


class BufferedObject:
    """A small object's GET read whole (the lean client's): its metadata and its body."""

    def __init__(self, meta: ObjectMeta, body: bytes) -> None:
        self.meta = meta
        self._body = body

    async def chunks(self, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Yield the body in chunks of at most ``size`` bytes."""
        for start in range(0, len(self._body), size):
            yield self._body[start:start + size]

    def close(self) -> None:
        """Nothing to release."""


class S3DataPath:
    """Where and how to reach the bucket's objects: location (endpoint, addressing, region)
    and credentials (static, or botocore's refreshable ones, read afresh for each signature)."""

    def __init__(self, location: BucketLocation, *, credentials: Credentials | None,
                 max_attempts: int = 5, pool_size: int = 32, connect_timeout: float = 10.0,
                 read_timeout: float = 60.0) -> None:
        self.location = location
        self.bucket = location.bucket
        self.region = location.region
        self.credentials = credentials
        self._signer: BodilessSigner | None = None
        self.max_attempts = max(1, max_attempts)
        self.pool_size = pool_size
        self.timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout)
        self.asked_bucket = False  # whether a session asked the bucket for its region

    def url_of(self, key: str | None) -> str:
        """The object's URL (the bucket's for None), encoded as S3 signs it."""
        return self.location.bucket_url() if key is None else self.location.url_of(key)

    def signed_headers(self, method: str, url: str, extra: dict[str, str] | None = None,
                       *, region: str | None = None) -> dict[str, str]:
        """Headers of a bodiless request signed with SigV4 for ``region`` (the bucket's region
        by default; unsigned without credentials)."""
        headers = dict(extra or {})
        if self.credentials is not None:
            region = region or self.region.name
            signer = self._signer
            if signer is None or signer.region != region:
                signer = self._signer = BodilessSigner(self.credentials, region)
            headers.update(signer.headers(method, url))
        return headers

    def connect(self) -> S3DataSession:
        """A session (one connection pool) for the current event loop; use with ``async with``."""
        return S3DataSession(self)


class S3DataSession:
    """HEAD and GET of objects over one aiohttp connection pool."""

    def __init__(self, path: S3DataPath) -> None:
        self.path = path
        self._session: aiohttp.ClientSession | None = None
        self._lean: LeanPool | None = None

    async def __aenter__(self) -> S3DataSession:
        connector = aiohttp.TCPConnector(limit=self.path.pool_size, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.path.timeout,
                                              auto_decompress=False)
        root = self.path.url_of(None)
        if LeanPool.usable(root):
            self._lean = LeanPool("/".join(root.split("/", 3)[:3]),  # scheme://host[:port]
                                  limit=self.path.pool_size,
                                  connect_timeout=self.path.timeout.sock_connect or 10.0,
                                  read_timeout=self.path.timeout.sock_read or 60.0, headers={})
        region = self.path.region
        if not (region.explicit or region.learnt or self.path.asked_bucket):
            await self._ask_region()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._lean is not None:
            self._lean.close()
        if self._session is not None:
            await self._session.close()

    async def head(self, key: str) -> ObjectMeta:
        """Metadata of one object."""
        response = await self._request("HEAD", key)
        response.release()
        return _meta(key, response)

    async def check(self) -> None:
        """HEAD the bucket as the objects are read: same URL scheme, signature and region."""
        (await self._request("HEAD", None)).release()

    async def open(self, key: str, *, if_match: str | None = None) -> S3Object:
        """Start a streamed GET of one object (only of version ``if_match`` when given)."""
        extra = {"If-Match": f'"{if_match}"'} if if_match else None
        response = await self._request("GET", key, extra)
        meta = _meta(key, response)
        if if_match and meta.etag != if_match:  # some servers ignore If-Match
            response.release()
            raise ObjectError(f"GET {key!r}: changed since it was listed (etag {meta.etag})")
        assert not isinstance(response, Answer)  # asked of aiohttp: no lean_max
        return S3Object(meta, response)

    async def open_small(self, key: str, *, max_size: int,
                         if_match: str | None = None) -> S3Object | BufferedObject:
        """GET one object expected to be small, read whole by the lean client (aiohttp's request
        path costs more CPU than a small object's bytes); one found larger than ``max_size``
        when its answer starts is read streamed instead."""
        if self._lean is None:
            return await self.open(key, if_match=if_match)
        extra = {"If-Match": f'"{if_match}"'} if if_match else None
        try:
            response = await self._request("GET", key, extra, lean_max=max_size)
        except AnswerTooLarge:
            return await self.open(key, if_match=if_match)
        assert isinstance(response, Answer)
        meta = _meta(key, response)
        if if_match and meta.etag != if_match:  # some servers ignore If-Match
            raise ObjectError(f"GET {key!r}: changed since it was listed (etag {meta.etag})")
        return BufferedObject(meta, response.body)

    async def open_range(self, key: str, first: int, last: int, *, if_match: str | None = None) -> S3Object:
        """Start a streamed GET of the bytes ``first`` to ``last`` (inclusive) of one object,
        only of version ``if_match`` when given; the meta's size is the whole object's."""
        extra = {"Range": f"bytes={first}-{last}"}
        if if_match:
            extra["If-Match"] = f'"{if_match}"'
        response = await self._request("GET", key, extra)
        meta = _meta(key, response)
        # A 206 as a rule; rclone serve s3 answers 200, with the range's bytes and its
        # Content-Range. Without the range asked for named there, the body is something else.
        sent, _, whole = response.headers.get("Content-Range", "").partition("/")
        if sent != f"bytes {first}-{last}" or not whole.isdigit():
            response.release()
            raise ObjectError(f"GET {key!r} bytes {first}-{last}: answered {response.status} with "
                              f"Content-Range {sent or 'none'!r} (ranged reads unsupported)")
        if if_match and meta.etag != if_match:  # some servers ignore If-Match
            response.release()
            raise ObjectError(f"GET {key!r}: changed since it was listed (etag {meta.etag})")
        assert not isinstance(response, Answer)  # asked of aiohttp: no lean_max
        return S3Object(replace(meta, size=int(whole)), response)

    async def _ask_region(self) -> None:
        """Learn the bucket's region from a HEAD of the bucket (AWS names it in every answer,
        even a 301 or 400 to a request signed for another region); quietly nothing when the
        server names none or cannot be reached (a wrong-region answer later still teaches it)."""
        assert self._session is not None
        url = self.path.url_of(None)
        try:
            response = await self._session.request(
                "HEAD", URL(url, encoded=True), headers=self.path.signed_headers("HEAD", url),
                allow_redirects=False)
        except (TimeoutError, aiohttp.ClientError, OSError):
            return
        response.release()
        self.path.asked_bucket = True
        self.path.region.learn(region_named(response.headers))

    async def _request(self, method: str, key: str | None, extra: dict[str, str] | None = None, *,
                       lean_max: int | None = None) -> aiohttp.ClientResponse | Answer:
        """One request (of the bucket itself for ``key`` None) with botocore's standard retry
        policy; the answer when it is a 2xx. With ``lean_max``, through the lean client, read
        whole (``AnswerTooLarge`` when a success has more bytes than that)."""
        assert self._session is not None, "use the session with 'async with'"
        what = f"{method} {key!r}" if key is not None else f"{method} bucket {self.path.bucket!r}"
        problem = ""
        asked: float | None = None  # the last answer's Retry-After, honoured up to the cap
        redirected = False
        attempt = 0
        while attempt < self.path.max_attempts:
            # The URL and signature follow the region, which an answer may have just taught.
            url, region = self.path.url_of(key), self.path.region.name
            lean = self._lean
            try:
                response: aiohttp.ClientResponse | Answer
                if lean_max is not None and lean is not None and url.startswith(lean.origin + "/"):
                    headers = self.path.signed_headers(method, url, extra, region=region)
                    response = await lean.request(
                        method, url[len(lean.origin):],
                        "".join(f"{name}: {value}\r\n" for name, value in headers.items()),
                        max_body=lean_max)
                else:
                    response = await self._session.request(
                        method, URL(url, encoded=True), allow_redirects=False,
                        headers=self.path.signed_headers(method, url, extra, region=region))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status < 300:
                    return response
                body = await response.read() if method != "HEAD" else b""
                response.release()
                elsewhere = wrong_region(response.status, response.headers, body, region)
                if elsewhere and not redirected:
                    if self.path.region.explicit:
                        raise ObjectError(f"{what}: {response.status} {self.path.region.mismatch(elsewhere)}")
                    self.path.region.learn(elsewhere)
                    redirected = True
                    continue  # once, at once: the same attempt, signed for the bucket's region
                code = _error_code(body) or str(response.status)
                if response.status == 404:
                    raise ObjectGone(f"{what}: not found")
                if response.status == 412:
                    raise ObjectError(f"{what}: changed since it was listed ({code})")
                problem = f"{response.status} {code}"
                asked = parse_retry_after(response.headers.get("Retry-After"))
                if response.status not in RETRYABLE_STATUSES and code not in ("SlowDown", "RequestTimeout"):
                    raise ObjectError(f"{what}: {problem}")
            attempt += 1
            if attempt < self.path.max_attempts:
                wait = compute_backoff(attempt, factor=BACKOFF_FACTOR_S, max_backoff=MAX_BACKOFF_S)
                await asyncio.sleep(max(wait, min(asked or 0.0, MAX_BACKOFF_S)))
        raise ObjectError(f"{what}: {problem} (after {self.path.max_attempts} attempts)")


def _meta(key: str, response: aiohttp.ClientResponse | Answer) -> ObjectMeta:
    headers = response.headers
    modified = headers.get("Last-Modified")
    return ObjectMeta(
        key=key,
        size=int(headers.get("Content-Length", 0)),
        etag=headers.get("ETag", "").strip('"'),
        last_modified=http_date_iso(modified) if modified else "",
        metadata={name[len(META_PREFIX):]: value for name, value in headers.items()
                  if name.lower().startswith(META_PREFIX)},
    )


_MONTHS = {name: f"{n:02d}" for n, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def http_date_iso(value: str) -> str:
    """An HTTP date as ``iso_utc`` writes it: the usual form (``Mon, 07 Dec 2026 06:00:00
    GMT``) rearranged by slicing, a third of the CPU of parsing it; any other through the
    standard library's parser."""
    month = _MONTHS.get(value[8:11])
    if len(value) == 29 and value.endswith(" GMT") and month and value[5:7].isdigit() \
            and value[12:16].isdigit() and value[19] == ":" and value[22] == ":":
        return f"{value[12:16]}-{month}-{value[5:7]}T{value[17:25]}Z"
    return iso_utc(parsedate_to_datetime(value))


def _error_code(body: bytes) -> str:
    start, end = body.find(b"<Code>"), body.find(b"</Code>")
    return body[start + 6:end].decode("utf-8", "replace") if 0 <= start < end else ""


__all__ = ["ObjectMeta", "S3DataPath", "S3DataSession", "S3Object"]
