"""The S3 data path: HEAD and streamed GET of single objects over aiohttp, signed with
SigV4 (``sigv4.BodilessSigner``, checked against botocore's signer).

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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from urllib.parse import quote

import aiohttp
from botocore.credentials import Credentials
from yarl import URL

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


class S3DataPath:
    """Where and how to reach the bucket's objects: endpoint, region, credentials."""

    def __init__(self, *, bucket: str, endpoint_url: str | None, region: str,
                 credentials: Credentials | None, max_attempts: int = 5, pool_size: int = 32,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0) -> None:
        self.bucket = bucket
        self.region = region or "us-east-1"
        self.credentials = credentials
        self._signer = BodilessSigner(credentials, self.region) if credentials is not None else None
        self.max_attempts = max(1, max_attempts)
        self.pool_size = pool_size
        self.timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout)
        if endpoint_url:
            self._base = f"{endpoint_url.rstrip('/')}/{quote(bucket, safe='')}/"
        else:
            self._base = f"https://{bucket}.s3.{self.region}.amazonaws.com/"

    def url_of(self, key: str) -> str:
        """The object's URL, path-style for a custom endpoint, encoded as S3 signs it."""
        return self._base + quote(key, safe="/~")

    def signed_headers(self, method: str, url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Headers of a bodiless request signed with SigV4 (unsigned without credentials)."""
        headers = dict(extra or {})
        if self._signer is not None:
            headers.update(self._signer.headers(method, url))
        return headers

    def connect(self) -> S3DataSession:
        """A session (one connection pool) for the current event loop; use with ``async with``."""
        return S3DataSession(self)


class S3DataSession:
    """HEAD and GET of objects over one aiohttp connection pool."""

    def __init__(self, path: S3DataPath) -> None:
        self.path = path
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> S3DataSession:
        connector = aiohttp.TCPConnector(limit=self.path.pool_size, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.path.timeout,
                                              auto_decompress=False)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    async def head(self, key: str) -> ObjectMeta:
        """Metadata of one object."""
        response = await self._request("HEAD", key)
        response.release()
        return _meta(key, response)

    async def open(self, key: str, *, if_match: str | None = None) -> S3Object:
        """Start a streamed GET of one object (only of version ``if_match`` when given)."""
        extra = {"If-Match": f'"{if_match}"'} if if_match else None
        response = await self._request("GET", key, extra)
        meta = _meta(key, response)
        if if_match and meta.etag != if_match:  # some servers ignore If-Match
            response.release()
            raise ObjectError(f"GET {key!r}: changed since it was listed (etag {meta.etag})")
        return S3Object(meta, response)

    async def _request(self, method: str, key: str,
                       extra: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        """One request with botocore's standard retry policy; the answer when it is a 2xx."""
        assert self._session is not None, "use the session with 'async with'"
        url = self.path.url_of(key)
        what = f"{method} {key!r}"
        problem = ""
        asked: float | None = None  # the last answer's Retry-After, honoured up to the cap
        for attempt in range(self.path.max_attempts):
            if attempt:
                wait = compute_backoff(attempt, factor=BACKOFF_FACTOR_S, max_backoff=MAX_BACKOFF_S)
                await asyncio.sleep(max(wait, min(asked or 0.0, MAX_BACKOFF_S)))
            try:
                response = await self._session.request(
                    method, URL(url, encoded=True), headers=self.path.signed_headers(method, url, extra))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status < 300:
                return response
            body = await response.read() if method != "HEAD" else b""
            response.release()
            code = _error_code(body) or str(response.status)
            if response.status == 404:
                raise ObjectGone(f"{what}: not found")
            if response.status == 412:
                raise ObjectError(f"{what}: changed since it was listed ({code})")
            problem = f"{response.status} {code}"
            asked = parse_retry_after(response.headers.get("Retry-After"))
            if response.status not in RETRYABLE_STATUSES and code not in ("SlowDown", "RequestTimeout"):
                raise ObjectError(f"{what}: {problem}")
        raise ObjectError(f"{what}: {problem} (after {self.path.max_attempts} attempts)")


def _meta(key: str, response: aiohttp.ClientResponse) -> ObjectMeta:
    headers = response.headers
    modified = headers.get("Last-Modified")
    return ObjectMeta(
        key=key,
        size=int(headers.get("Content-Length", 0)),
        etag=headers.get("ETag", "").strip('"'),
        last_modified=iso_utc(parsedate_to_datetime(modified)) if modified else "",
        metadata={name[len(META_PREFIX):]: value for name, value in headers.items()
                  if name.lower().startswith(META_PREFIX)},
    )


def _error_code(body: bytes) -> str:
    start, end = body.find(b"<Code>"), body.find(b"</Code>")
    return body[start + 6:end].decode("utf-8", "replace") if 0 <= start < end else ""


__all__ = ["ObjectMeta", "S3DataPath", "S3DataSession", "S3Object"]
