"""Tests of the mock file-manager API, served by real uvicorn on a real port."""

from __future__ import annotations

import hashlib
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.local_servers import REPO_ROOT, MockApiProcess, MotoS3, free_port, wait_for_http
from mock_api.__main__ import ConfigError, parse_settings
from mock_api.storage import S3Storage
from tests.helpers.harness import serving
from tests.helpers.waiting import wait_for

TOKEN = "s3cr3t-token-for-tests"


@dataclass
class MockApi:
    """A running mock API plus the folders it stores into."""

    url: str
    root: Path
    session: requests.Session

    def post(self, endpoint: str, **kwargs: Any) -> requests.Response:
        """POST to ``endpoint`` on the mock."""
        return self.session.post(f"{self.url}{endpoint}", timeout=30, **kwargs)

    def get(self, endpoint: str, **kwargs: Any) -> requests.Response:
        """GET ``endpoint`` on the mock."""
        return self.session.get(f"{self.url}{endpoint}", timeout=30, **kwargs)

    def save(self, path: str, body: Any, key: str | None = None) -> requests.Response:
        """Upload ``body`` to ``path``."""
        headers = {"Content-Type": "application/octet-stream"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.post("/saveToDisk", params={"path": path}, data=body, headers=headers)

    def files(self) -> dict[str, dict[str, Any]]:
        """The stored files keyed by path."""
        listing = self.get("/files").json()
        return {entry["path"]: entry for entry in listing}

    def faults(self, **config: Any) -> None:
        """Install a fault setting."""
        response = self.post("/admin/faults", json=config)
        assert response.status_code == 200, response.text


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def disk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One mock API on disk storage for the module (tests reset it); yields (url, root)."""
    root = tmp_path_factory.mktemp("mock-api") / "root"
    for server in serving(lambda: MockApiProcess(root).start(), "the mock API"):
        yield server.url, root


@pytest.fixture
def api(disk_server: tuple[str, Path]) -> Iterator[MockApi]:
    """The module's mock API, freshly reset."""
    url, root = disk_server
    with requests.Session() as session:
        mock = MockApi(url, root, session)
        assert mock.post("/admin/reset").status_code == 200
        yield mock


# ----- uploads -------------------------------------------------------------------------------


def test_upload_is_listed_with_size_and_sha256(api: MockApi) -> None:
    body = b"hello file manager\n"

    response = api.save("docs/a.txt", body)

    assert response.status_code == 200
    assert response.json() == {"path": "docs/a.txt", "size": len(body), "sha256": sha256(body)}
    assert api.files() == {
        "docs/a.txt": {"path": "docs/a.txt", "size": len(body), "sha256": sha256(body), "permissions": None}
    }
    assert (api.root / "docs" / "a.txt").read_bytes() == body
    assert api.get("/fileContent", params={"path": "docs/a.txt"}).content == body


def test_chunked_generator_body_is_stored_whole(api: MockApi) -> None:
    parts = [os.urandom(1000) for _ in range(50)]

    # A generator body makes requests use Transfer-Encoding: chunked.
    response = api.save("chunked.bin", (part for part in parts))

    data = b"".join(parts)
    assert response.status_code == 200
    assert response.json()["sha256"] == sha256(data)
    assert api.files()["chunked.bin"]["size"] == len(data)


def test_five_megabyte_body(api: MockApi) -> None:
    data = os.urandom(5 * 1024 * 1024)

    response = api.save("big/blob.bin", data)

    assert response.status_code == 200
    assert response.json() == {"path": "big/blob.bin", "size": len(data), "sha256": sha256(data)}
    assert api.files()["big/blob.bin"]["sha256"] == sha256(data)
    assert list((api.root / ".tmp").iterdir()) == []


def test_empty_body_is_a_valid_file(api: MockApi) -> None:
    response = api.save("empty", b"")

    assert response.status_code == 200
    assert api.files()["empty"]["size"] == 0


def test_overwrite_replaces_content_and_keeps_permissions(api: MockApi) -> None:
    api.save("f.txt", b"old")
    api.post("/updatePermissions", json={"path": "f.txt", "permissions": {"read": ["alice"]}})

    api.save("f.txt", b"new content")

    entry = api.files()["f.txt"]
    assert (entry["size"], entry["sha256"]) == (11, sha256(b"new content"))
    assert entry["permissions"] == {"read": ["alice"]}


def test_file_and_folder_with_the_same_name_conflict_on_disk(api: MockApi) -> None:
    api.save("a", b"x")

    response = api.save("a/b", b"y")

    assert response.status_code == 409
    assert list(api.files()) == ["a"]


# ----- permissions, delete, move ---------------------------------------------------------------


def test_update_permissions(api: MockApi) -> None:
    api.save("p.txt", b"x")

    response = api.post("/updatePermissions", json={"path": "p.txt", "permissions": {"visibility": "public"}})

    assert response.status_code == 200
    assert response.json() == {"path": "p.txt", "permissions": {"visibility": "public"}}
    assert api.files()["p.txt"]["permissions"] == {"visibility": "public"}


def test_update_permissions_of_unknown_path_is_404(api: MockApi) -> None:
    response = api.post("/updatePermissions", json={"path": "nope.txt", "permissions": {}})

    assert response.status_code == 404


def test_update_permissions_rejects_non_object(api: MockApi) -> None:
    api.save("p.txt", b"x")

    response = api.post("/updatePermissions", json={"path": "p.txt", "permissions": "rw-r--r--"})

    assert response.status_code == 400


def test_delete_unknown_path_is_a_success(api: MockApi) -> None:
    response = api.post("/deleteFile", json={"path": "never/was.txt"})

    assert response.status_code == 200
    assert response.json() == {"path": "never/was.txt", "deleted": False}


def test_delete_removes_file_and_empty_folders(api: MockApi) -> None:
    api.save("deep/er/f.txt", b"x")

    response = api.post("/deleteFile", json={"path": "deep/er/f.txt"})

    assert response.json() == {"path": "deep/er/f.txt", "deleted": True}
    assert api.files() == {}
    assert not (api.root / "deep").exists()


def test_move_unknown_source_is_404(api: MockApi) -> None:
    response = api.post("/moveFile", json={"from": "ghost.txt", "to": "b.txt"})

    assert response.status_code == 404


def test_move_onto_existing_path_is_409(api: MockApi) -> None:
    api.save("a.txt", b"a")
    api.save("b.txt", b"b")

    response = api.post("/moveFile", json={"from": "a.txt", "to": "b.txt"})

    assert response.status_code == 409
    assert (api.root / "b.txt").read_bytes() == b"b"


def test_move_carries_content_and_permissions(api: MockApi) -> None:
    api.save("src/a.txt", b"payload")
    api.post("/updatePermissions", json={"path": "src/a.txt", "permissions": {"mode": "0644"}})

    response = api.post("/moveFile", json={"from": "src/a.txt", "to": "dst/sub/a.txt"})

    assert response.status_code == 200
    assert response.json() == {"from": "src/a.txt", "to": "dst/sub/a.txt"}
    files = api.files()
    assert list(files) == ["dst/sub/a.txt"]
    assert files["dst/sub/a.txt"]["permissions"] == {"mode": "0644"}
    assert (api.root / "dst" / "sub" / "a.txt").read_bytes() == b"payload"
    assert not (api.root / "src").exists()


def test_sync_results_are_kept(api: MockApi) -> None:
    report = {"run_id": "r1", "succeeded": 3, "failed": 0}

    response = api.post("/syncResults", json=report)

    assert response.json() == {"received": True}
    assert api.get("/syncResults").json() == [report]
    assert api.get("/operations").json()[-1]["op"] == "syncResults"


def test_operations_log_records_applied_calls_in_order(api: MockApi) -> None:
    api.save("a", b"1", key="k1")
    api.post("/updatePermissions", json={"path": "a", "permissions": {}})
    api.post("/moveFile", json={"from": "a", "to": "b"})
    api.post("/deleteFile", json={"path": "b"})
    api.post("/moveFile", json={"from": "missing", "to": "c"})  # 404: not applied

    operations = api.get("/operations").json()

    assert [(op["op"], op["path"], op["to"]) for op in operations] == [
        ("saveToDisk", "a", None),
        ("updatePermissions", "a", None),
        ("moveFile", "a", "b"),
        ("deleteFile", "b", None),
    ]
    assert operations[0]["idempotency_key"] == "k1"
    assert {op["status"] for op in operations} == {200}
    assert not any(op["replay"] for op in operations)


# ----- path validation ---------------------------------------------------------------------------

HOSTILE_PATHS = ["../x", "a/../../etc/passwd", "/abs", "a//b", "a\x00b", "a" * 1025, "", "./a", "a/\x7f",
                 "next\x85line", "c1\x80", "c1\x9f", "dir\\file.txt", "..\\..\\x"]


def test_the_mock_keeps_its_own_path_rule() -> None:
    """A rule shared with the service could not catch the service's mistakes (issue 9)."""
    sources = Path(__file__).resolve().parents[1] / "mock_api"
    assert not [p.name for p in sources.glob("*.py")
                if re.search(r"^\s*(from|import) sync_service", p.read_text(encoding="utf-8"), re.M)]


def _assert_nothing_escaped(api: MockApi) -> None:
    """Only the storage root exists beside it, and the root holds nothing but an empty spool."""
    assert [p.name for p in api.root.parent.iterdir()] == ["root"]
    assert [p.name for p in api.root.iterdir()] == [".tmp"]
    assert list((api.root / ".tmp").iterdir()) == []


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_upload_path_is_400_and_writes_nothing(api: MockApi, path: str) -> None:
    response = api.save(path, b"evil")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("invalid path: ")
    _assert_nothing_escaped(api)


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_json_paths_are_400(api: MockApi, path: str) -> None:
    api.save("ok.txt", b"fine")

    answers = [
        api.post("/updatePermissions", json={"path": path, "permissions": {}}),
        api.post("/deleteFile", json={"path": path}),
        api.post("/moveFile", json={"from": "ok.txt", "to": path}),
        api.post("/moveFile", json={"from": path, "to": "new.txt"}),
    ]

    assert [r.status_code for r in answers] == [400, 400, 400, 400]
    assert all(r.json()["detail"].startswith("invalid path: ") for r in answers)
    assert list(api.files()) == ["ok.txt"]


def test_missing_path_parameter_is_400(api: MockApi) -> None:
    response = api.post("/saveToDisk", data=b"x")

    assert response.status_code == 400


def test_reserved_spool_folder_is_400(api: MockApi) -> None:
    response = api.save(".tmp/sneaky", b"x")

    assert response.status_code == 400
    _assert_nothing_escaped(api)


def test_symlink_out_of_the_root_is_400(api: MockApi, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (api.root / "link").symlink_to(outside, target_is_directory=True)
    try:
        response = api.save("link/x.txt", b"x")
    finally:
        (api.root / "link").unlink()

    assert response.status_code == 400
    assert list(outside.iterdir()) == []


# ----- idempotency ---------------------------------------------------------------------------------


def test_idempotent_replay_returns_first_answer_and_applies_once(api: MockApi) -> None:
    first = api.save("idem.txt", b"first", key="op-1")

    second = api.save("idem.txt", b"second, different", key="op-1")

    assert second.status_code == first.status_code == 200
    assert second.json() == first.json()
    assert api.files()["idem.txt"]["sha256"] == sha256(b"first")
    # Both calls are in the log, the second marked as a replay: a test counting what a client
    # sent sees the second send, though it changed nothing.
    operations = api.get("/operations").json()
    assert [(op["op"], op["path"], op["idempotency_key"], op["replay"]) for op in operations] == [
        ("saveToDisk", "idem.txt", "op-1", False), ("saveToDisk", "idem.txt", "op-1", True)]
    assert api.get("/stats").json() == {"replayed": 1, "faulted": 0, "applied": 1, "in_flight": 0}


def test_idempotency_keys_are_per_endpoint(api: MockApi) -> None:
    api.save("k.txt", b"x", key="same")

    response = api.post("/deleteFile", json={"path": "k.txt"}, headers={"Idempotency-Key": "same"})

    assert response.json() == {"path": "k.txt", "deleted": True}


def test_cached_404_is_replayed_even_after_the_path_appears(api: MockApi) -> None:
    body = {"path": "late.txt", "permissions": {"a": 1}}
    headers = {"Idempotency-Key": "perm-1"}
    assert api.post("/updatePermissions", json=body, headers=headers).status_code == 404
    api.save("late.txt", b"x")

    again = api.post("/updatePermissions", json=body, headers=headers)

    assert again.status_code == 404
    assert api.files()["late.txt"]["permissions"] is None


def test_concurrent_calls_with_one_key_apply_once(api: MockApi) -> None:
    def slow_body() -> Iterator[bytes]:
        for _ in range(8):
            time.sleep(0.05)  # the pace of a slow client: what keeps the first call streaming
            yield b"slow "

    answers: list[requests.Response] = []
    first = threading.Thread(target=lambda: answers.append(api.save("race.txt", slow_body(), key="race")))
    first.start()
    # The first call spools its body inside the key's lock: once its spool file is there, it holds it.
    wait_for(lambda: any((api.root / ".tmp").iterdir()), 10, "the first call spooling its body")
    second = requests.post(
        f"{api.url}/saveToDisk",
        params={"path": "race.txt"},
        data=b"fast",
        headers={"Idempotency-Key": "race"},
        timeout=30,
    )
    first.join()

    assert second.json() == answers[0].json()
    assert second.json()["sha256"] == sha256(b"slow " * 8)
    assert [op["replay"] for op in api.get("/operations").json()] == [False, True]


def test_client_disconnect_mid_upload_leaves_nothing_and_does_not_poison_the_key(api: MockApi) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /saveToDisk?path=cut.bin HTTP/1.1\r\nHost: x\r\nIdempotency-Key: cut\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10
        )
        # Cut only once the mock is spooling the body: a cut before would test nothing.
        wait_for(lambda: any((api.root / ".tmp").iterdir()), 10, "the mock spooling the upload")
    wait_for(lambda: not any((api.root / ".tmp").iterdir()), 5, "the cut upload's spool file going")

    retry = api.save("cut.bin", b"whole", key="cut")

    assert list((api.root / ".tmp").iterdir()) == []
    assert retry.status_code == 200
    assert retry.json()["sha256"] == sha256(b"whole")


# ----- auth ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A mock API that requires TOKEN."""
    root = tmp_path_factory.mktemp("token-root")
    for server in serving(lambda: MockApiProcess(root, token=TOKEN).start(), "the mock API"):
        yield server.url


@pytest.mark.parametrize(
    ("method", "endpoint", "body"),
    [
        ("POST", "/saveToDisk?path=a.txt", None),
        ("POST", "/deleteFile", {"path": "a.txt"}),
        ("POST", "/syncResults", {"run_id": "r"}),
        ("GET", "/files", None),
        ("GET", "/operations", None),
        ("GET", "/stats", None),
        ("POST", "/admin/reset", None),
        ("POST", "/admin/faults", {}),
    ],
)
def test_token_is_required(token_server: str, method: str, endpoint: str, body: dict[str, Any] | None) -> None:
    url = f"{token_server}{endpoint}"

    def call(headers: dict[str, str]) -> requests.Response:
        return requests.request(method, url, json=body, headers=headers, timeout=10)

    missing = call({})
    wrong = call({"Authorization": "Bearer nope"})
    right = call({"Authorization": f"Bearer {TOKEN}"})

    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"detail": "missing or wrong bearer token"}
    assert right.status_code == 200, right.text


def test_health_needs_no_token(token_server: str) -> None:
    response = requests.get(f"{token_server}/health", timeout=10)

    assert response.json() == {"status": "ok"}


# ----- faults ----------------------------------------------------------------------------------------


def test_fail_rate_one_answers_503_with_retry_after(api: MockApi) -> None:
    api.faults(fail_rate=1, status=503)

    response = api.save("f.txt", os.urandom(256 * 1024))  # the body is drained: no broken pipe

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "0"
    assert response.json() == {"detail": "injected fault"}
    assert api.files() == {}
    assert api.get("/operations").json() == []
    assert api.get("/stats").json()["faulted"] == 1
    assert api.get("/health").status_code == 200


def test_seeded_half_rate_fails_exactly_the_drawn_calls(api: MockApi) -> None:
    api.faults(fail_rate=0.5, status=500, seed=7)
    rng = random.Random(7)
    expected = [500 if rng.random() < 0.5 else 200 for _ in range(20)]

    statuses = [api.save(f"s/{i}", b"x").status_code for i in range(20)]

    assert statuses == expected
    assert 0 < statuses.count(500) < 20
    assert len(api.files()) == statuses.count(200)


def test_match_only_faults_matching_paths(api: MockApi) -> None:
    api.faults(fail_rate=1, status=429, match="flaky/")

    hit = api.save("flaky/a", b"x")
    miss = api.save("steady/a", b"x")
    moved = api.post("/moveFile", json={"from": "steady/a", "to": "flaky/b"})

    assert hit.status_code == 429
    assert hit.headers["Retry-After"] == "0"
    assert miss.status_code == 200
    assert moved.status_code == 200  # match looks at the source path of a move


def test_corrupt_answers_a_wrong_sha256_but_stores_correctly(api: MockApi) -> None:
    api.faults(fail_rate=1, corrupt=True)

    response = api.save("c.bin", b"content")

    assert response.status_code == 200
    assert response.json()["sha256"] != sha256(b"content")
    assert api.files()["c.bin"]["sha256"] == sha256(b"content")


def test_latency_delays_selected_calls(api: MockApi) -> None:
    api.faults(fail_rate=1, latency_ms=300)

    started = time.monotonic()
    response = api.post("/deleteFile", json={"path": "x"})
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.3


def test_after_apply_fault_applies_and_replay_gets_the_real_answer(api: MockApi) -> None:
    api.faults(fail_rate=1, status=503, after_apply=True)
    lost = api.save("lost.txt", b"data", key="op-9")
    api.faults()

    retry = api.save("lost.txt", b"data", key="op-9")

    assert lost.status_code == 503
    assert retry.status_code == 200
    assert retry.json()["sha256"] == sha256(b"data")
    assert [op["replay"] for op in api.get("/operations").json()] == [False, True]


def test_empty_fault_setting_clears_faults(api: MockApi) -> None:
    api.faults(fail_rate=1, status=503)

    api.faults()

    assert api.save("ok", b"x").status_code == 200
    assert api.get("/admin/faults").json()["fail_rate"] == 0


@pytest.mark.parametrize(
    "config",
    [{"fail_rate": 2}, {"fail_rate": "high"}, {"status": 200}, {"latency_ms": -1}, {"typo": 1}],
)
def test_bad_fault_settings_are_400(api: MockApi, config: dict[str, Any]) -> None:
    response = api.post("/admin/faults", json=config)

    assert response.status_code == 400


def test_reset_wipes_everything(api: MockApi) -> None:
    api.save("a/b.txt", b"x", key="k")
    api.post("/syncResults", json={"run_id": "r"})
    api.faults(fail_rate=1, status=503, match="zzz")

    api.post("/admin/reset")

    assert api.files() == {}
    assert api.get("/operations").json() == []
    assert api.get("/syncResults").json() == []
    assert api.get("/stats").json() == {"replayed": 0, "faulted": 0, "applied": 0, "in_flight": 0}
    assert api.get("/admin/faults").json()["fail_rate"] == 0
    assert [p.name for p in api.root.iterdir()] == [".tmp"]
    # The idempotency cache is gone too: the same key applies again.
    assert api.save("a/b.txt", b"y", key="k").json()["sha256"] == sha256(b"y")


# ----- storage backends --------------------------------------------------------------------------------


def test_disk_index_is_rebuilt_on_startup(tmp_path: Path) -> None:
    (tmp_path / "kept" / "deep").mkdir(parents=True)
    (tmp_path / "kept" / "deep" / "f.txt").write_bytes(b"persisted")
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "upload-stale").write_bytes(b"junk")

    server = MockApiProcess(tmp_path).start()
    try:
        listing = requests.get(f"{server.url}/files", timeout=10).json()
    finally:
        server.stop()

    assert listing == [{"path": "kept/deep/f.txt", "size": 9, "sha256": sha256(b"persisted"), "permissions": None}]
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_s3_storage_stores_objects_in_the_target_bucket(moto_s3: MotoS3, tmp_path: Path) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_s3.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="target-bucket")
    (tmp_path / "spool").mkdir()
    # The mock spools uploads in a temporary folder: TMPDIR puts it where the test can look.
    server = MockApiProcess(tmp_path / "unused", extra_env={
        "MOCK_STORAGE": "s3", "TARGET_S3_ENDPOINT": moto_s3.endpoint, "TARGET_S3_BUCKET": "target-bucket",
        "TARGET_S3_ACCESS_KEY": "testing", "TARGET_S3_SECRET_KEY": "testing", "TMPDIR": str(tmp_path / "spool")})
    server.start()
    url = server.url
    data = os.urandom(300 * 1024)
    try:
        saved = requests.post(f"{url}/saveToDisk", params={"path": "dir/obj.bin"}, data=data, timeout=30)
        perms = requests.post(
            f"{url}/updatePermissions",
            json={"path": "dir/obj.bin", "permissions": {"read": ["bob"]}},
            timeout=30,
        )
        moved = requests.post(f"{url}/moveFile", json={"from": "dir/obj.bin", "to": "new/obj.bin"}, timeout=30)

        assert (saved.status_code, perms.status_code, moved.status_code) == (200, 200, 200)
        assert saved.json()["sha256"] == sha256(data)
        stored = client.get_object(Bucket="target-bucket", Key="new/obj.bin")
        assert stored["Body"].read() == data
        assert stored["Metadata"]["sha256"] == sha256(data)
        assert "Contents" not in client.list_objects_v2(Bucket="target-bucket", Prefix="dir/")
        assert [p for p in (tmp_path / "spool").rglob("*") if p.is_file()] == []
        # A new storage on the same bucket finds the object again, permissions included.
        rescanned = S3Storage(client, "target-bucket", tmp_dir=tmp_path / "spool2").scan()
        assert rescanned["new/obj.bin"].permissions == {"read": ["bob"]}

        requests.post(f"{url}/admin/reset", timeout=30)

        assert "Contents" not in client.list_objects_v2(Bucket="target-bucket")
    finally:
        server.stop()


# ----- command line ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MOCK_API_PORT": "eighty"}, "MOCK_API_PORT"),
        ({"MOCK_API_PORT": "70000"}, "MOCK_API_PORT"),
        ({"MOCK_STORAGE": "tape"}, "MOCK_STORAGE"),
        ({"MOCK_STORAGE": "s3", "TARGET_S3_ENDPOINT": "minio:9000"}, "TARGET_S3_ENDPOINT"),
        ({"MOCK_STORAGE": "s3", "TARGET_S3_BUCKET": "Bad_Bucket"}, "TARGET_S3_BUCKET"),
        ({"MOCK_STORAGE": "s3", "TARGET_S3_ACCESS_KEY": "k"}, "TARGET_S3_SECRET_KEY"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        parse_settings(env, [])


def test_flags_override_environment() -> None:
    settings = parse_settings(
        {"MOCK_API_PORT": "9000", "MOCK_API_HOST": "0.0.0.0"}, ["--port", "9100", "--host", "::1"]
    )

    assert (settings.host, settings.port) == ("::1", 9100)


def _run_module(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start ``python -m mock_api`` from the repository root."""
    return subprocess.Popen(
        [sys.executable, "-m", "mock_api", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_exits_2_on_bad_config() -> None:
    process = _run_module({"MOCK_API_PORT": "nope"})
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 2
    assert "MOCK_API_PORT" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_cli_serves_with_token_and_never_prints_it(tmp_path: Path) -> None:
    port = free_port()
    process = _run_module(
        {"API_TOKEN": TOKEN, "MOCK_STORAGE_DIR": str(tmp_path / "store")},
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", process=process)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        saved = requests.post(f"http://127.0.0.1:{port}/saveToDisk?path=x", data=b"1", headers=auth, timeout=10)
        denied = requests.get(f"http://127.0.0.1:{port}/files", timeout=10)
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)

    assert saved.status_code == 200
    assert denied.status_code == 401
    assert (tmp_path / "store" / "x").read_bytes() == b"1"
    assert TOKEN not in stdout + stderr
