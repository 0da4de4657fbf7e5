"""The benchmarks' light file manager (bench/light_file_manager.mjs) keeps SPEC §3's contract:
an initial sync through it stores every byte, and its answers match the mock's."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.local_servers import LightFileManagerProcess
from tests.helpers.harness import Bucket, Cli, serving


@pytest.fixture
def light(tmp_path: Path) -> Iterator[LightFileManagerProcess]:
    yield from serving(lambda: LightFileManagerProcess(tmp_path / "light-root").start(),  # type: ignore[arg-type,return-value]
                       "the light file manager (node)")


def post(light: LightFileManagerProcess, route: str, key: str | None = None, **kwargs: object) -> requests.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return requests.post(f"{light.url}{route}", headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_initial_sync_through_the_light_file_manager_stores_every_byte(
        light: LightFileManagerProcess, bucket: Bucket, cli: Cli) -> None:
    bodies = {f"d{n % 3}/obj-{n}.bin": bytes([n]) * (n * 997) for n in range(12)}
    for key, body in bodies.items():
        bucket.put(key, body, permissions={"read": [key]})

    result = cli.run("initial-sync", MOCK_API_URL=light.url)

    assert result.returncode == 0, result.stderr[-2000:]
    stored = {f["path"]: f for f in requests.get(f"{light.url}/files", timeout=10).json()}
    assert {p: (f["size"], f["sha256"], f["permissions"]) for p, f in stored.items()} == {
        key: (len(body), hashlib.sha256(body).hexdigest(), {"read": [key]}) for key, body in bodies.items()}
    assert all((light.storage_dir / key).read_bytes() == body for key, body in bodies.items())


def test_the_light_file_manager_answers_as_the_contract_says(light: LightFileManagerProcess) -> None:
    first = post(light, "/saveToDisk", "k1", params={"path": "a/b.txt"}, data=b"hello")
    replay = post(light, "/saveToDisk", "k1", params={"path": "a/b.txt"}, data=b"other")
    assert first.status_code == replay.status_code == 200
    assert first.json() == replay.json() == {"path": "a/b.txt", "size": 5,
                                             "sha256": hashlib.sha256(b"hello").hexdigest()}
    assert (light.storage_dir / "a" / "b.txt").read_bytes() == b"hello"  # the replay changed nothing
    for bad in ("", "/abs", "a/../b", "a//b", "a\\b", "a\x01b", "x" * 1025):
        assert post(light, "/saveToDisk", params={"path": bad}, data=b"x").status_code == 400, bad
    assert post(light, "/updatePermissions", json={"path": "nope", "permissions": {}}).status_code == 404
    assert post(light, "/updatePermissions", json={"path": "a/b.txt", "permissions": []}).status_code == 400
    post(light, "/saveToDisk", params={"path": "c.txt"}, data=b"c")
    assert post(light, "/moveFile", json={"from": "a/b.txt", "to": "c.txt"}).status_code == 409
    assert post(light, "/moveFile", json={"from": "zz", "to": "y"}).status_code == 404
    assert post(light, "/moveFile", json={"from": "a/b.txt", "to": "e/f.txt"}).status_code == 200
    assert (light.storage_dir / "e" / "f.txt").read_bytes() == b"hello"
    assert post(light, "/deleteFile", json={"path": "c.txt"}).json()["deleted"] is True
    assert post(light, "/deleteFile", json={"path": "c.txt"}).json()["deleted"] is False
    assert not (light.storage_dir / "c.txt").exists()
    assert [f["path"] for f in requests.get(f"{light.url}/files", timeout=10).json()] == ["e/f.txt"]
