"""The file-manager API client (SPEC §3): one pooled session, bearer token, idempotency keys,
and the one retry policy of the service for API calls.

Every mutating call sends ``Idempotency-Key``; a retried call sends the same key, so an attempt
that succeeded but whose answer was lost is not applied twice. ``saveToDisk`` streams the body
from a fresh source on each attempt, hashing it on the way, and checks the size and sha256 the
API reports against what was sent; after such an integrity mismatch the next attempt carries a
new key (``<key>:i<n>``), since the old one would only replay the bad answer.

Each answer is classified once, here (SPEC §3): ``NotFoundError`` (404), ``ConflictError``
(409), other 4xx ``PermanentApiError``; 5xx, 408, 429, timeouts and connection errors
``RetryableApiError``, retried by the one loop of this module. An error of the body's source
(the S3 object, an ``ObjectError``) ends the call at once: S3 requests have botocore's retries,
and looping over them here would multiply both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from sync_service.errors import (
    ApiError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    PermanentApiError,
    RetryableApiError,
)
from sync_service.utils.backoff import BACKOFF_FACTOR_S, MAX_BACKOFF_S, compute_backoff, parse_retry_after
from sync_service.utils.clock import Clock

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
_PERMANENT: dict[int, type[PermanentApiError]] = {404: NotFoundError, 409: ConflictError}
MAX_RETRY_AFTER_S = 60.0

BodySource = Callable[[], Iterable[bytes]]


@dataclass(frozen=True)
class SaveResult:
    """What the API confirmed it stored."""

    path: str
    size: int
    sha256: str


class _HashingBody:
    """Wraps a chunk iterable, counting and hashing what passes through."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.size = 0
        self.sha256 = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if chunk:
                self.size += len(chunk)
                self.sha256.update(chunk)
                yield chunk


class InfrastructureAPI:
    """Calls the file manager over one pooled HTTP session."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        timeout: float = 30.0,
        max_retries: int = 5,
        pool_size: int = 16,
        session: requests.Session | None = None,
        clock: Clock | None = None,
        backoff_factor: float = BACKOFF_FACTOR_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(10.0, timeout), timeout)
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.clock = clock or Clock()
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        self.session.headers["User-Agent"] = "s3-sync-service"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    # -- the calls -------------------------------------------------------------------------

    def save_to_disk(self, path: str, open_body: BodySource, *, key: str) -> SaveResult:
        """Stream a file's content to ``saveToDisk``; ``open_body`` is called once per attempt."""

        mismatches = 0

        def attempt() -> SaveResult:
            nonlocal mismatches
            body = _HashingBody(open_body())
            answer = self._send(
                "POST", "/saveToDisk", key=f"{key}:i{mismatches}" if mismatches else key,
                params={"path": path}, data=iter(body),
                headers={"Content-Type": "application/octet-stream"},
            )
            sent = SaveResult(path, body.size, body.sha256.hexdigest())
            got = SaveResult(path, int(answer.get("size", -1)), str(answer.get("sha256", "")))
            if (got.size, got.sha256) != (sent.size, sent.sha256):
                mismatches += 1
                raise IntegrityError(
                    f"saveToDisk {path!r}: API stored {got.size} bytes sha256 {got.sha256[:12]}, "
                    f"sent {sent.size} bytes sha256 {sent.sha256[:12]}"
                )
            return sent

        return self._with_retries(f"saveToDisk {path!r}", attempt)

    def update_permissions(self, path: str, permissions: str | dict[str, Any], *,
                           key: str) -> dict[str, Any]:
        """Set a file's permissions (``permissions`` as a dict or JSON text)."""
        value = json.loads(permissions) if isinstance(permissions, str) else permissions
        return self._call("POST", "/updatePermissions", key=key,
                          payload={"path": path, "permissions": value})

    def delete_file(self, path: str, *, key: str) -> dict[str, Any]:
        """Delete a file; an unknown path is already gone, which is a success."""
        return self._call("POST", "/deleteFile", key=key, payload={"path": path})

    def move_file(self, source: str, target: str, *, key: str) -> dict[str, Any]:
        """Rename or move a file."""
        return self._call("POST", "/moveFile", key=key, payload={"from": source, "to": target})

    def post_report(self, url: str, report: dict[str, Any]) -> None:
        """Send a run report to ``url`` (absolute, or relative to the API base)."""
        self._call("POST", url, key=f"report-{report.get('run_id', '')}", payload=report)

    def health(self) -> float:
        """Seconds ``GET /health`` takes; raises ApiError when it is not healthy."""
        started = time.monotonic()
        self._send("GET", "/health", key=None, timeout=(3.0, 5.0))
        return time.monotonic() - started

    # -- transport -------------------------------------------------------------------------

    def _call(self, method: str, route: str, *, key: str,
              payload: dict[str, Any]) -> dict[str, Any]:
        return self._with_retries(
            f"{route.rsplit('/', 1)[-1]} {payload.get('path', payload.get('from', ''))!r}",
            lambda: self._send(method, route, key=key, json_body=payload),
        )

    def _with_retries(self, what: str, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` until it succeeds, fails permanently, or retries run out."""
        last: RetryableApiError | None = None
        for number in range(self.max_retries + 1):
            if number:
                wait = compute_backoff(number, factor=self.backoff_factor, max_backoff=MAX_BACKOFF_S)
                retry_after = getattr(last, "retry_after", None)
                if retry_after is not None:
                    wait = max(wait, min(retry_after, MAX_RETRY_AFTER_S))
                logger.debug("retrying %s in %.2fs (attempt %d): %s", what, wait, number + 1, last)
                if not self.clock.sleep(wait):
                    raise RetryableApiError(f"{what}: stopping, not retried: {last}",
                                            status=getattr(last, "status", None)) from last
            try:
                return attempt()
            except RetryableApiError as exc:
                last = exc
        assert last is not None
        raise RetryableApiError(
            f"{what}: gave up after {self.max_retries + 1} attempts: {last}",
            status=getattr(last, "status", None),
        ) from last

    def _send(self, method: str, route: str, *, key: str | None,
              params: dict[str, str] | None = None, json_body: dict[str, Any] | None = None,
              data: Iterable[bytes] | None = None, headers: dict[str, str] | None = None,
              timeout: tuple[float, float] | None = None) -> dict[str, Any]:
        """One HTTP exchange, with library errors translated to the service's own."""
        url = route if route.startswith(("http://", "https://")) else self.base_url + route
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Idempotency-Key"] = key
        try:
            response = self.session.request(
                method, url, params=params, json=json_body, data=data, headers=all_headers,
                timeout=timeout or self.timeout,
            )
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise RetryableApiError(f"{method} {route}: {type(exc).__name__}: {exc}") from exc
        except requests.RequestException as exc:
            raise PermanentApiError(f"{method} {route}: {exc}") from exc
        status = response.status_code
        if status >= 400:
            detail = _detail(response)
            message = f"{method} {route} answered {status}: {detail}"
            if status in RETRYABLE_STATUSES:
                raise RetryableApiError(
                    message, status=status,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            raise _PERMANENT.get(status, PermanentApiError)(message, status=status)
        if not response.content:
            return {}
        try:
            answer = response.json()
        except ValueError as exc:
            raise RetryableApiError(f"{method} {route}: answer is not JSON", status=status) from exc
        return answer if isinstance(answer, dict) else {"answer": answer}


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]


__all__ = ["ApiError", "InfrastructureAPI", "SaveResult"]
