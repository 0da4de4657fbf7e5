"""The API client against the mock API on a real port: retries, integrity, idempotency, auth."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync_service.clients.infrastructure_api import InfrastructureAPI
from sync_service.errors import (
    ConflictError,
    NotFoundError,
    ObjectError,
    PermanentApiError,
    RetryableApiError,
)
from sync_service.utils.clock import Clock
from sync_service.utils.local_servers import MockApiProcess
from tests.conftest import Api


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


def chunks_of(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


def test_save_streams_chunks_and_checks_the_answer(api: Api) -> None:
    body = bytes(range(256)) * 4000
    fm, _ = client(api)
    opened = []

    def open_body() -> Iterator[bytes]:
        opened.append(1)
        return chunks_of(body)

    saved = fm.save_to_disk("dir/ü file.bin", open_body, key="k1")
    assert (saved.size, saved.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert api.files()["dir/ü file.bin"]["sha256"] == saved.sha256
    assert opened == [1]


def test_503_is_retried_with_backoff_then_given_up(api: Api) -> None:
    api.faults(fail_rate=1.0, status=503)
    fm, clock = client(api, retries=3)
    opened: list[int] = []

    def open_body() -> Iterator[bytes]:
        opened.append(1)
        return iter([b"abc"])

    with pytest.raises(RetryableApiError, match="gave up after 4 attempts"):
        fm.save_to_disk("a.txt", open_body, key="k")
    assert len(clock.sleeps) == 3
    assert len(opened) == 4  # a fresh body for every attempt
    assert api.stats()["faulted"] == 4


def test_permanent_4xx_is_not_retried(api: Api) -> None:
    fm, clock = client(api)
    with pytest.raises(PermanentApiError) as refused:
        fm.update_permissions("never-saved.txt", {"read": ["a"]}, key="p")
    assert refused.value.status == 404
    with pytest.raises(PermanentApiError) as invalid:
        fm.save_to_disk("../escape.txt", lambda: iter([b"x"]), key="s")
    assert invalid.value.status == 400
    assert clock.sleeps == []


def test_integrity_mismatch_is_a_failed_attempt(api: Api) -> None:
    api.faults(fail_rate=1.0, corrupt=True)
    fm, clock = client(api, retries=2)
    with pytest.raises(RetryableApiError, match="sha256"):
        fm.save_to_disk("c.txt", lambda: iter([b"content"]), key="c")
    assert len(clock.sleeps) == 2


def test_a_hanging_api_times_out_and_is_retried(api: Api) -> None:
    api.faults(fail_rate=1.0, latency_ms=2000)
    fm, clock = client(api, retries=1, timeout=0.3)
    with pytest.raises(RetryableApiError, match="Timeout"):
        fm.delete_file("x.txt", key="d")
    assert len(clock.sleeps) == 1


def test_the_same_idempotency_key_applies_once(api: Api) -> None:
    fm, _ = client(api)
    fm.save_to_disk("once.txt", lambda: iter([b"1"]), key="same-key")
    fm.save_to_disk("once.txt", lambda: iter([b"1"]), key="same-key")
    fm.move_file("once.txt", "moved.txt", key="move-key")
    fm.move_file("once.txt", "moved.txt", key="move-key")  # a replay, not a 404
    assert [op["op"] for op in api.operations()] == ["saveToDisk", "moveFile"]
    assert set(api.files()) == {"moved.txt"}
    assert fm.delete_file("unknown.txt", key="del")  # unknown is already gone


def test_bearer_token_is_sent_and_enforced(tmp_path: Path) -> None:
    server = MockApiProcess(tmp_path / "store", token="sekret-token").start()
    try:
        anonymous = InfrastructureAPI(server.url, max_retries=0)
        with pytest.raises(PermanentApiError) as denied:
            anonymous.delete_file("a.txt", key="k")
        assert denied.value.status == 401
        assert anonymous.health() >= 0  # health needs no token
        authorised = InfrastructureAPI(server.url, token="sekret-token", max_retries=0)
        assert authorised.delete_file("a.txt", key="k") == {"path": "a.txt", "deleted": False}
    finally:
        server.stop()


def test_unreachable_api_is_retryable() -> None:
    fm = InfrastructureAPI("http://127.0.0.1:9", max_retries=0)
    with pytest.raises(RetryableApiError):
        fm.health()


def test_a_body_that_breaks_mid_stream_fails_the_call_without_a_second_retry_loop(api: Api) -> None:
    fm, clock = client(api, retries=3)
    opened: list[int] = []

    def open_body() -> Iterator[bytes]:
        opened.append(1)
        yield b"first chunk"
        raise ObjectError("reading 'a.bin' failed: connection reset")

    with pytest.raises(ObjectError, match="connection reset"):
        fm.save_to_disk("a.bin", open_body, key="broken")
    assert opened == [1] and clock.sleeps == []  # S3 has botocore's retries; none stacked here
    assert "a.bin" not in api.files()


def test_404_and_409_are_classified_once_where_they_arrive(api: Api) -> None:
    fm, clock = client(api, retries=3)
    with pytest.raises(NotFoundError):
        fm.update_permissions("nowhere.txt", {"read": ["x"]}, key="p1")
    fm.save_to_disk("a.txt", lambda: iter([b"a"]), key="s1")
    fm.save_to_disk("b.txt", lambda: iter([b"b"]), key="s2")
    with pytest.raises(ConflictError):
        fm.move_file("a.txt", "b.txt", key="m1")
    assert clock.sleeps == []
