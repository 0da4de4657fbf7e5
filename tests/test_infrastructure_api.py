"""The API client against the mock API on a real port: retries, integrity, idempotency, auth."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from devtools.local_servers import MockApiProcess
from sync_service.clients.infrastructure_api import BodySource, FileManagerSession, InfrastructureAPI
from sync_service.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    ObjectError,
    PermanentApiError,
    RetryableApiError,
)
from sync_service.utils.clock import Clock
from tests.helpers.harness import Api


class RecordingClock(Clock):
    """Never sleeps; remembers what it was asked to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        return True


def client(api: Api, *, retries: int = 3, timeout: float = 10.0,
           token: str = "") -> tuple[InfrastructureAPI, RecordingClock]:
    clock = RecordingClock()
    return InfrastructureAPI(api.url, token=token, timeout=timeout, max_retries=retries, clock=clock), clock


T = TypeVar("T")


def on(fm: InfrastructureAPI, call: Callable[[FileManagerSession], Awaitable[T]]) -> T:
    """Make one call in a session of its own event loop."""
    async def main() -> T:
        async with fm.connect() as session:
            return await call(session)
    return asyncio.run(main())


def body_of(*chunks: bytes, opened: list[int] | None = None) -> BodySource:
    """A body source giving ``chunks``; counts the times it is opened in ``opened``."""
    async def chunks_() -> AsyncIterator[bytes]:
        if opened is not None:
            opened.append(1)
        for chunk in chunks:
            yield chunk
    return chunks_


def chunks_of(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


def test_save_streams_chunks_and_checks_the_answer(api: Api) -> None:
    body = bytes(range(256)) * 4000
    fm, _ = client(api)
    opened: list[int] = []

    saved = on(fm, lambda s: s.save_to_disk("dir/ü file.bin", body_of(*chunks_of(body), opened=opened),
                                            key="k1"))
    assert (saved.size, saved.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert api.files()["dir/ü file.bin"]["sha256"] == saved.sha256
    assert opened == [1]


def test_503_is_retried_with_backoff_then_given_up(api: Api) -> None:
    api.faults(fail_rate=1.0, status=503)
    fm, clock = client(api, retries=3)
    opened: list[int] = []

    with pytest.raises(RetryableApiError, match="gave up after 4 attempts"):
        on(fm, lambda s: s.save_to_disk("a.txt", body_of(b"abc", opened=opened), key="k"))
    assert len(clock.sleeps) == 3
    assert len(opened) == 4  # a fresh body for every attempt
    assert api.stats()["faulted"] == 4


def test_permanent_4xx_is_not_retried(api: Api) -> None:
    fm, clock = client(api)
    with pytest.raises(PermanentApiError) as refused:
        on(fm, lambda s: s.update_permissions("never-saved.txt", {"read": ["a"]}, key="p"))
    assert refused.value.status == 404
    with pytest.raises(PermanentApiError) as invalid:
        on(fm, lambda s: s.save_to_disk("../escape.txt", body_of(b"x"), key="s"))
    assert invalid.value.status == 400
    assert clock.sleeps == []


def test_integrity_mismatch_is_a_failed_attempt(api: Api) -> None:
    api.faults(fail_rate=1.0, corrupt=True)
    fm, clock = client(api, retries=2)
    with pytest.raises(RetryableApiError, match="sha256"):
        on(fm, lambda s: s.save_to_disk("c.txt", body_of(b"content"), key="c"))
    assert len(clock.sleeps) == 2


def test_a_hanging_api_times_out_and_is_retried(api: Api) -> None:
    api.faults(fail_rate=1.0, latency_ms=2000)
    fm, clock = client(api, retries=1, timeout=0.3)
    with pytest.raises(RetryableApiError, match="Timeout"):
        on(fm, lambda s: s.delete_file("x.txt", key="d"))
    assert len(clock.sleeps) == 1


def test_the_same_idempotency_key_applies_once(api: Api) -> None:
    fm, _ = client(api)

    async def calls(s: FileManagerSession) -> dict[str, Any]:
        await s.save_to_disk("once.txt", body_of(b"1"), key="same-key")
        await s.save_to_disk("once.txt", body_of(b"1"), key="same-key")
        await s.move_file("once.txt", "moved.txt", key="move-key")
        await s.move_file("once.txt", "moved.txt", key="move-key")  # a replay, not a 404
        return await s.delete_file("unknown.txt", key="del")

    assert on(fm, calls)  # unknown is already gone
    # each sent twice is applied once: the second is answered from the mock's cache
    assert [(op["op"], op["replay"]) for op in api.operations()] == [
        ("saveToDisk", False), ("saveToDisk", True), ("moveFile", False), ("moveFile", True), ("deleteFile", False)]
    assert set(api.files()) == {"moved.txt"}


def test_bearer_token_is_sent_and_enforced(tmp_path: Path) -> None:
    server = MockApiProcess(tmp_path / "store", token="sekret-token").start()
    try:
        anonymous = InfrastructureAPI(server.url, max_retries=0)
        with pytest.raises(PermanentApiError) as denied:
            on(anonymous, lambda s: s.delete_file("a.txt", key="k"))
        assert denied.value.status == 401
        assert anonymous.health() >= 0  # health needs no token
        authorised = InfrastructureAPI(server.url, token="sekret-token", max_retries=0)
        assert on(authorised, lambda s: s.delete_file("a.txt", key="k")) == {"path": "a.txt", "deleted": False}
    finally:
        server.stop()


def test_unreachable_api_is_retryable() -> None:
    fm = InfrastructureAPI("http://127.0.0.1:9", max_retries=0)
    with pytest.raises(RetryableApiError):
        fm.health()


def test_a_request_aiohttp_refuses_to_build_is_a_config_error_naming_the_url_without_its_password() -> None:
    fm = InfrastructureAPI("http://user:s3cr3t-pw@127.0.0.1:9", token="a-token", max_retries=0)
    with pytest.raises(ConfigError, match=r"http://user:\*\*\*@127\.0\.0\.1:9/syncResults.*cannot be made") as caught:
        fm.post_report("/syncResults", {"run_id": "r1"})
    assert "s3cr3t-pw" not in str(caught.value)


def test_a_body_that_breaks_mid_stream_fails_the_call_without_a_second_retry_loop(api: Api) -> None:
    fm, clock = client(api, retries=3)
    opened: list[int] = []

    async def open_body() -> AsyncIterator[bytes]:
        opened.append(1)
        yield b"first chunk"
        raise ObjectError("reading 'a.bin' failed: connection reset")

    with pytest.raises(ObjectError, match="connection reset"):
        on(fm, lambda s: s.save_to_disk("a.bin", open_body, key="broken"))
    assert opened == [1] and clock.sleeps == []  # S3 requests have their own retries; none stacked
    assert "a.bin" not in api.files()


def test_404_and_409_are_classified_once_where_they_arrive(api: Api) -> None:
    fm, clock = client(api, retries=3)
    with pytest.raises(NotFoundError):
        on(fm, lambda s: s.update_permissions("nowhere.txt", {"read": ["x"]}, key="p1"))

    async def taken(s: FileManagerSession) -> None:
        await s.save_to_disk("a.txt", body_of(b"a"), key="s1")
        await s.save_to_disk("b.txt", body_of(b"b"), key="s2")
        await s.move_file("a.txt", "b.txt", key="m1")

    with pytest.raises(ConflictError):
        on(fm, taken)
    assert clock.sleeps == []
