"""The file-manager API client (SPEC §3): bearer token, idempotency keys, and the one retry
policy of the service for API calls, over one aiohttp connection pool.

``InfrastructureAPI`` holds the settings and makes the control-plane calls (``health``,
``post_report``) for code that is not async; ``connect()`` opens a ``FileManagerSession`` for
the executor's event loop, which makes the data-plane calls.

Every mutating call sends ``Idempotency-Key``; a retried call sends the same key, so an attempt
that succeeded but whose answer was lost is not applied twice. ``saveToDisk`` streams the body
from a fresh source on each attempt, hashing it on the way, and checks the size and sha256 the
API reports against what was sent; after such an integrity mismatch the next attempt carries a
new key (``<key>:i<n>``), since the old one would only replay the bad answer.

A request aiohttp refuses to build (``ValueError``) is a ``ConfigError``. Each answer is
classified once, here (SPEC §3): ``NotFoundError`` (404), ``ConflictError``
(409), other 4xx ``PermanentApiError``; 5xx, 408, 429, timeouts and connection errors
``RetryableApiError``, retried by the one loop of this module. An error of the body's source
(the S3 object, an ``ObjectError``) ends the call at once: S3 requests have their own retries,
and looping over them here would multiply both.

Every request waits for the client's limits first (``ApiLimits``: ``API_MAX_RPS``, and the
pause a 429 or 503 with ``Retry-After`` asks of the whole client), and every chunk of an upload
for ``BWLIMIT``; the health probe waits for neither, so ``status`` can still ask during a pause.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from sync_service.clients.api_limits import ApiLimits
from sync_service.clients.lean_http import LeanPool
from sync_service.errors import (
    ApiError,
    ConfigError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    PermanentApiError,
    RetryableApiError,
    SyncError,
)
from sync_service.utils.backoff import BACKOFF_FACTOR_S, MAX_BACKOFF_S, compute_backoff, parse_retry_after
from sync_service.utils.clock import Clock
from sync_service.utils.redaction import mask_url

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
_PERMANENT: dict[int, type[PermanentApiError]] = {404: NotFoundError, 409: ConflictError}
MAX_RETRY_AFTER_S = 60.0
#: Answers whose ``Retry-After`` pauses the whole client (SPEC §4), not only the call.
PAUSING_STATUSES = frozenset({429, 503})

BodySource = Callable[[], AsyncIterator[bytes]]
JSON_HEADERS = {"Content-Type": "application/json"}
#: Bodies up to this size are read whole and sent as one buffer: a streamed body costs aiohttp
#: a generator step and a write per chunk, which for small objects is most of the upload's CPU.
INLINE_BODY_BYTES = 256 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class SaveResult:
    """What the API confirmed it stored."""

    path: str
    size: int
    sha256: str


class InfrastructureAPI:
    """The file manager's address, token, timeouts and retry policy."""

    def __init__(self, base_url: str, *, token: str = "", timeout: float = 30.0,
                 max_retries: int = 5, pool_size: int = 16, clock: Clock | None = None,
                 backoff_factor: float = BACKOFF_FACTOR_S, max_rps: float | None = None,
                 bwlimit: float | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(sock_connect=min(10.0, timeout), sock_read=timeout)
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.pool_size = pool_size
        self.clock = clock or Clock()
        self.limits = ApiLimits(max_rps, bwlimit, monotonic=self.clock.monotonic)
        self.headers = {"User-Agent": "s3-sync-service"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def connect(self) -> FileManagerSession:
        """A session (one connection pool) for the current event loop; use with ``async with``."""
        return FileManagerSession(self)

    # -- control plane, for code that is not async ----------------------------------------------

    def health(self) -> float:
        """Seconds ``GET /health`` takes; raises ApiError when it is not healthy."""
        async def check(fm: FileManagerSession) -> float:
            started = time.monotonic()
            await fm.send("GET", "/health", key=None, timeout=aiohttp.ClientTimeout(total=5.0), limited=False)
            return time.monotonic() - started
        return self._run(check)

    def post_report(self, url: str, report: dict[str, Any]) -> None:
        """Send a run report to ``url`` (absolute, or relative to the API base)."""
        async def post(fm: FileManagerSession) -> None:
            await fm.call("POST", url, key=f"report-{report.get('run_id', '')}", payload=report)
        self._run(post)

    def _run(self, work: Callable[[FileManagerSession], Coroutine[Any, Any, T]]) -> T:
        async def main() -> T:
            async with self.connect() as fm:
                return await work(fm)
        return asyncio.run(main())


class FileManagerSession:
    """The file-manager calls, over one connection pool in one event loop: calls whose body is
    in memory through the lean client (``lean_http``), the rest through aiohttp."""

    def __init__(self, api: InfrastructureAPI) -> None:
        self.api = api
        self._session: aiohttp.ClientSession | None = None
        self._lean: LeanPool | None = None

    async def __aenter__(self) -> FileManagerSession:
        connector = aiohttp.TCPConnector(limit=self.api.pool_size, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.api.timeout,
                                              headers=self.api.headers)
        if LeanPool.usable(self.api.base_url):
            timeout = self.api.timeout
            self._lean = LeanPool(self.api.base_url, limit=self.api.pool_size,
                                  connect_timeout=timeout.sock_connect or 10.0,
                                  read_timeout=timeout.sock_read or 30.0, headers=self.api.headers)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._lean is not None:
            self._lean.close()
        if self._session is not None:
            await self._session.close()

    # -- the calls -------------------------------------------------------------------------

    async def save_to_disk(self, path: str, open_body: BodySource, *, key: str,
                           size: int | None = None) -> SaveResult:
        """Stream a file's content to ``saveToDisk``; ``open_body`` is called once per attempt.

        With ``size`` known, the body goes with a Content-Length rather than chunked, which is
        cheaper for both ends; a body that then gives another size fails that attempt.
        """
        mismatches = 0
        expected = size
        length = {"Content-Length": str(size)} if size is not None else {}

        async def attempt() -> SaveResult:
            nonlocal mismatches
            digest, size = hashlib.sha256(), 0

            async def hashed() -> AsyncIterator[bytes]:
                nonlocal size
                async for chunk in open_body():
                    if chunk:
                        await self.api.limits.before_upload(len(chunk), self._stopping)
                        size += len(chunk)
                        digest.update(chunk)
                        yield chunk

            data: bytes | AsyncIterator[bytes] = hashed()
            if expected is not None and expected <= INLINE_BODY_BYTES:
                data = b"".join([chunk async for chunk in hashed()])
            answer = await self.send(
                "POST", "/saveToDisk", key=f"{key}:i{mismatches}" if mismatches else key,
                params={"path": path}, data=data,
                headers={"Content-Type": "application/octet-stream", **length})
            sent = SaveResult(path, size, digest.hexdigest())
            got = SaveResult(path, int(answer.get("size", -1)), str(answer.get("sha256", "")))
            if (got.size, got.sha256) != (sent.size, sent.sha256):
                mismatches += 1
                raise IntegrityError(
                    f"saveToDisk {path!r}: API stored {got.size} bytes sha256 {got.sha256[:12]}, "
                    f"sent {sent.size} bytes sha256 {sent.sha256[:12]}")
            return sent

        return await self._with_retries(f"saveToDisk {path!r}", attempt)

    async def update_permissions(self, path: str, permissions: str | dict[str, Any], *,
                                 key: str) -> dict[str, Any]:
        """Set a file's permissions (``permissions`` as a dict or JSON text).

        Stored permissions are already JSON text: it goes into the body as it is, instead of
        being parsed only to be serialised again on every call."""
        text = permissions if isinstance(permissions, str) else json.dumps(permissions)
        body = f'{{"path":{json.dumps(path)},"permissions":{text}}}'.encode()
        return await self._with_retries(
            f"updatePermissions {path!r}",
            lambda: self.send("POST", "/updatePermissions", key=key, data=body, headers=JSON_HEADERS))

    async def delete_file(self, path: str, *, key: str) -> dict[str, Any]:
        """Delete a file; an unknown path is already gone, which is a success."""
        return await self.call("POST", "/deleteFile", key=key, payload={"path": path})

    async def move_file(self, source: str, target: str, *, key: str) -> dict[str, Any]:
        """Rename or move a file."""
        return await self.call("POST", "/moveFile", key=key, payload={"from": source, "to": target})

    # -- transport -------------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self.api.clock.stopping

    async def call(self, method: str, route: str, *, key: str,
                   payload: dict[str, Any]) -> dict[str, Any]:
        """A JSON call with retries."""
        body = json.dumps(payload).encode()
        return await self._with_retries(
            f"{route.rsplit('/', 1)[-1]} {payload.get('path', payload.get('from', ''))!r}",
            lambda: self.send(method, route, key=key, data=body, headers=JSON_HEADERS))

    async def _with_retries(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it succeeds, fails permanently, or retries run out."""
        api = self.api
        last: RetryableApiError | None = None
        for number in range(api.max_retries + 1):
            if number:
                assert last is not None
                wait = compute_backoff(number, factor=api.backoff_factor, max_backoff=MAX_BACKOFF_S)
                if last.retry_after is not None:
                    wait = max(wait, min(last.retry_after, MAX_RETRY_AFTER_S))
                logger.debug("retrying %s in %.2fs (attempt %d): %s", what, wait, number + 1, last)
                if not await asyncio.to_thread(api.clock.sleep, wait):
                    raise RetryableApiError(f"{what}: stopping, not retried: {last}",
                                            status=last.status) from last
            try:
                return await attempt()
            except RetryableApiError as exc:
                last = exc
        assert last is not None
        raise RetryableApiError(f"{what}: gave up after {api.max_retries + 1} attempts: {last}",
                                status=last.status) from last

    async def send(self, method: str, route: str, *, key: str | None,
                   params: dict[str, str] | None = None, json_body: dict[str, Any] | None = None,
                   data: bytes | AsyncIterator[bytes] | None = None, headers: dict[str, str] | None = None,
                   timeout: aiohttp.ClientTimeout | None = None, limited: bool = True) -> dict[str, Any]:
        """One HTTP exchange, with library errors translated to the service's own; ``limited``
        (all but the health probe): it waits for the client's limits first."""
        assert self._session is not None, "use the session with 'async with'"
        if limited:
            await self.api.limits.before_request(self._stopping)
        if (self._lean is not None and timeout is None and json_body is None and route[:1] == "/"
                and (data is None or isinstance(data, bytes))):
            return await self._send_lean(method, route, key=key, params=params, data=data or b"",
                                         headers=headers)
        url = route if route.startswith(("http://", "https://")) else self.api.base_url + route
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Idempotency-Key"] = key
        try:
            async with self._session.request(method, url, params=params, json=json_body, data=data,
                                             headers=all_headers, timeout=timeout or self.api.timeout
                                             ) as response:
                status = response.status
                content = await response.read()
                retry_after = response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            source = _body_error(exc)
            if source is not None:  # the body's own source failed (the S3 object): not ours to retry
                raise source from exc
            raise RetryableApiError(f"{method} {route}: {type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise PermanentApiError(f"{method} {route}: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            # aiohttp refuses to build the request (a user:password in the URL beside the token's
            # Authorization header, a malformed URL): every call would fail alike, so it is the
            # configuration that is wrong, not this operation.
            raise ConfigError(f"{method} {mask_url(url)}: the request cannot be made: {exc}") from exc
        return self._answer(method, route, status, content, retry_after)

    async def _send_lean(self, method: str, route: str, *, key: str | None, params: dict[str, str] | None,
                         data: bytes, headers: dict[str, str] | None) -> dict[str, Any]:
        """``send`` of a body in memory through the lean client (one write, one buffered answer)."""
        assert self._lean is not None
        target = route
        if params:
            target += "?" + "&".join(f"{quote(name, safe='')}={quote(value, safe='/')}"
                                     for name, value in params.items())
        # The lean client writes the Content-Length itself (a second one is a 400 in Node).
        lines = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items()
                        if name.lower() != "content-length")
        if key is not None:
            lines += f"Idempotency-Key: {key}\r\n"
        try:
            answer = await self._lean.request(method, target, lines, data)
        except (TimeoutError, OSError) as exc:
            raise RetryableApiError(f"{method} {route}: {type(exc).__name__}: {exc}") from exc
        return self._answer(method, route, answer.status, answer.body, answer.headers.get("retry-after"))

    def _answer(self, method: str, route: str, status: int, content: bytes,
                retry_after: str | None) -> dict[str, Any]:
        """An answer classified (SPEC §3): its JSON, or the error its status means."""
        if status >= 400:
            message = f"{method} {route} answered {status}: {_detail(content)}"
            if status in RETRYABLE_STATUSES:
                wait = parse_retry_after(retry_after)
                if status in PAUSING_STATUSES and wait:  # the file manager asks the client for a breath
                    self.api.limits.pause(min(wait, MAX_RETRY_AFTER_S))
                raise RetryableApiError(message, status=status, retry_after=wait)
            raise _PERMANENT.get(status, PermanentApiError)(message, status=status)
        if not content:
            return {}
        try:
            answer = json.loads(content.decode("utf-8"))  # a str skips json's guess of the encoding
        except ValueError as exc:
            raise RetryableApiError(f"{method} {route}: answer is not JSON", status=status) from exc
        return answer if isinstance(answer, dict) else {"answer": answer}


def _body_error(exc: BaseException) -> SyncError | None:
    """The service's own error that broke a request body, if that is what aiohttp reports."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SyncError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _detail(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return content[:200].decode("utf-8", "replace")
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]


__all__ = ["ApiError", "FileManagerSession", "InfrastructureAPI", "SaveResult"]
