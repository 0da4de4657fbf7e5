"""One contract, three stores: S3 (moto), Google Cloud Storage (fake-gcs-server) and Azure Blob
Storage (Azurite), each named by ``SOURCE_URL`` with a prefix, the CLI as a process and the
mock API on a port. Initial sync of awkward keys with permissions metadata, a 64 MiB object
streamed with flat memory, a run killed with SIGKILL and resumed, incremental sync from each
store's own notification format in the spool, reconcile, and ``status``.

Marked ``clouds`` (``make test-clouds``): the emulators start in a few seconds each, and the
64 MiB object takes a while through the mock API.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import psutil
import pytest
import requests

from devtools.cloud_emulators import Azurite, FakeGcs
from devtools.local_servers import ACCESS_KEY, SECRET_KEY, MotoS3, free_port
from sync_service.runs.health import OK
from tests.helpers.harness import TEST_DATABASE_URL, Api, Cli, new_bucket, serving
from tests.helpers.sync import DEFAULT, delivered_paths, report_of, sha, stop
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.clouds

PREFIX = "root/"
AWKWARD = {
    "with space/file name.txt": b"spaces",
    "unicode/übersicht ✓ 日本.txt": "unicode ✓".encode(),
    "plus+sign.txt": b"plus",
    "percent%20literal%2F.txt": b"percent",
    "quotes/it's \"quoted\".txt": b"quotes",
    "deep/a/b/c/d/e/f/g/h/leaf.bin": os.urandom(3000),
    "zero-bytes.bin": b"",
}
PERMISSIONS = {
    "with space/file name.txt": {"read": ["alice", "bob"], "write": ["alice"]},
    "unicode/übersicht ✓ 日本.txt": {"visibility": "public"},
}


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    yield from serving(lambda: FakeGcs().start(), "fake-gcs-server")  # type: ignore[arg-type, misc]


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    yield from serving(lambda: Azurite().start(), "Azurite (npm ci)")  # type: ignore[arg-type, misc]


@dataclass
class Source:
    """A bucket in one store, what the test put in it (below ``PREFIX``), and its events."""

    store: str
    bucket: str
    env: dict[str, str]
    server: Any
    objects: dict[str, bytes] = field(default_factory=dict)

    def put(self, path: str, body: bytes, permissions: dict[str, Any] | None = None) -> None:
        metadata = {"permissions": json.dumps(permissions)} if permissions else None
        key = PREFIX + path
        if self.store == "s3":
            extra = {"Metadata": metadata} if metadata else {}
            self.server.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
        else:
            self.server.put(self.bucket, key, body, metadata)
        self.objects[path] = body

    def put_unsynced(self, key: str, body: bytes) -> None:
        """An object the sync must leave out (an invalid path, a folder marker): not expected."""
        if self.store == "s3":
            self.server.put_object(Bucket=self.bucket, Key=key, Body=body)
        else:
            self.server.put(self.bucket, key, body)

    def delete(self, path: str) -> None:
        if self.store == "s3":
            self.server.delete_object(Bucket=self.bucket, Key=PREFIX + path)
        else:
            self.server.delete(self.bucket, PREFIX + path)
        del self.objects[path]

    def notification(self, kind: str, path: str) -> dict[str, Any] | list[dict[str, Any]]:
        """The store's own notification that ``path`` was created or deleted."""
        key = PREFIX + path
        if self.store == "s3":
            return {"Records": [{"eventName": "ObjectCreated:Put" if kind == "create" else "ObjectRemoved:Delete",
                                 "eventTime": "2026-11-20T09:15:02.118Z",
                                 "s3": {"bucket": {"name": self.bucket}, "object": {"key": quote_plus(key)}}}]}
        if self.store == "gcs":
            resource = self.server.resource(self.bucket, key) if kind == "create" else {"name": key}
            return {"message": {"messageId": uuid.uuid4().hex, "attributes": {
                "eventType": "OBJECT_FINALIZE" if kind == "create" else "OBJECT_DELETE",
                "bucketId": self.bucket, "objectId": key, "payloadFormat": "JSON_API_V1"},
                "data": base64.b64encode(json.dumps(resource).encode()).decode()},
                "subscription": "projects/p/subscriptions/s"}
        subject = f"/blobServices/default/containers/{self.bucket}/blobs/{key}"
        data = {"api": "PutBlob" if kind == "create" else "DeleteBlob", "blobType": "BlockBlob",
                "url": self.server.blob_url(self.bucket, key)}
        if kind == "create":  # the Event Grid schema, an array
            return [{"id": uuid.uuid4().hex, "eventType": "Microsoft.Storage.BlobCreated", "subject": subject,
                     "eventTime": "2026-11-20T09:15:02.1181Z", "data": data, "dataVersion": "",
                     "metadataVersion": "1", "topic": "/subscriptions/x/storageAccounts/devstoreaccount1"}]
        return {"specversion": "1.0", "id": uuid.uuid4().hex, "type": "Microsoft.Storage.BlobDeleted",
                "source": "/subscriptions/x/storageAccounts/devstoreaccount1", "subject": subject,
                "time": "2026-11-20T09:15:02.1181Z", "data": data}


@pytest.fixture(params=["s3", "gcs", "azure"])
def source(request: pytest.FixtureRequest) -> Source:
    if request.param == "s3":
        moto: MotoS3 = request.getfixturevalue("moto_s3")
        bucket = new_bucket(moto.endpoint)
        return Source("s3", bucket.name, {
            "SOURCE_URL": f"s3://{bucket.name}/{PREFIX}", "CUSTOMER_S3_ENDPOINT": moto.endpoint,
            "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY, "CUSTOMER_S3_SECRET_KEY": SECRET_KEY}, bucket.client)
    if request.param == "gcs":
        gcs: FakeGcs = request.getfixturevalue("fake_gcs")
        name = gcs.new_bucket()
        return Source("gcs", name, {"SOURCE_URL": f"gs://{name}/{PREFIX}", **gcs.env()}, gcs)
    azure: Azurite = request.getfixturevalue("azurite")
    name = azure.new_bucket()
    return Source("azure", name, {"SOURCE_URL": f"az://{name}/{PREFIX}", **azure.env()}, azure)


@pytest.fixture
def cloud_cli(request: pytest.FixtureRequest, tmp_path: Path, source: Source, api: Api) -> Iterator[Cli]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    # With TEST_DATABASE_URL, the state in PostgreSQL: the listing goes by key ranges there.
    database = {"DATABASE_URL": request.getfixturevalue("postgres_url")} if TEST_DATABASE_URL else {}
    cli = Cli(workdir, {**database, **source.env, "MOCK_API_URL": api.url, "SYNC_WORKERS": "8",
                        "LOG_LEVEL": "INFO"})
    yield cli
    cli.kill_leftovers()


def assert_mirrors(api: Api, source: Source, permissions: dict[str, Any] | None = None) -> None:
    files = api.files()
    assert set(files) == set(source.objects)
    for path, body in source.objects.items():
        assert files[path]["sha256"] == sha(body), path
        assert files[path]["permissions"] == (permissions or {}).get(path, DEFAULT), path


def spool(cli: Cli, name: str, *messages: object) -> None:
    folder = cli.workdir / "data" / "events"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(m) + "\n" for m in messages))


def test_awkward_keys_arrive_with_their_permissions_and_status_checks_the_store(
        cloud_cli: Cli, source: Source, api: Api) -> None:
    for path, body in AWKWARD.items():
        source.put(path, body, PERMISSIONS.get(path))
    # Outside the prefix: never synced.
    source.put_unsynced("elsewhere.txt", b"no")

    result = cloud_cli.run("initial-sync")

    assert result.returncode == 0, result.stderr[-3000:]
    report = report_of(result)
    assert report["operations"]["create"] == len(AWKWARD) and report["failed"] == 0
    assert_mirrors(api, source, PERMISSIONS)
    status = cloud_cli.run("status")
    assert status.returncode == 0, status.stdout + status.stderr


def assert_skipped_and_counted(cli: Cli, source: Source, api: Api, invalid: list[str]) -> None:
    """Initial sync with ``invalid`` keys and a folder marker beside valid objects: the valid
    ones arrive, the others are skipped, counted by reason and named in the log."""
    for key in invalid:
        source.put_unsynced(PREFIX + key, b"bad")
    source.put_unsynced(PREFIX + "photos/", b"")  # a console's folder marker
    source.put("photos/good.jpg", b"good")
    source.put("after/all.txt", b"listed past the odd names")

    result = cli.run("initial-sync")

    assert result.returncode == 0, result.stderr[-3000:]
    report = report_of(result)
    assert report["skipped_reasons"] == {"invalid_key": len(invalid), "folder_marker": 1}
    assert report["failed"] == 0
    assert_mirrors(api, source)
    for key in invalid:
        assert f"skipping key {PREFIX + key!r}: not a valid path" in result.stderr, key


def test_names_with_empty_segments_and_folder_markers_are_skipped_and_counted(
        cloud_cli: Cli, source: Source, api: Api) -> None:
    assert_skipped_and_counted(cloud_cli, source, api, ["a//b.txt", "/lead.txt", "trailing//"])


def test_names_with_dot_segments_are_skipped_and_counted(cloud_cli: Cli, source: Source, api: Api) -> None:
    if source.store == "azure":
        # Azure resolves '.' and '..' in a blob's URL before it reaches the blob, so no such
        # name can be written (Azurite answers a PUT of one with 403, its signature computed on
        # the resolved path): nothing of the kind can be listed.
        pytest.skip("Azure cannot store a blob named with a '.' or '..' segment")
    assert_skipped_and_counted(cloud_cli, source, api, ["x/../y.txt", "./z.txt"])


def test_a_64_mib_object_streams_with_flat_memory(cloud_cli: Cli, source: Source, api: Api) -> None:
    source.put("small.bin", os.urandom(1024 * 1024))
    small = peak_rss_of(cloud_cli, "initial-sync")
    source.put("big.bin", os.urandom(64 * 1024 * 1024))

    big = peak_rss_of(cloud_cli, "initial-sync")  # the second run delivers only the new object

    assert_mirrors(api, source)
    # Holding the object would add 64 MiB; streaming adds a few chunks of 1 MiB.
    assert big - small < 32 * 1024 * 1024, (small, big)


def peak_rss_of(cli: Cli, *args: str) -> int:
    """Run the CLI, sampling its resident memory until it exits; the peak, in bytes."""
    process = cli.start(*args)
    watched = psutil.Process(process.pid)
    peak = 0

    def exited() -> bool:
        nonlocal peak
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            return True
        return process.poll() is not None

    wait_for(exited, 300, f"{' '.join(args)} exiting", interval=0.01)
    assert process.wait(timeout=10) == 0, (cli.workdir / "process-0.log").read_text()[-3000:]
    return peak


def killed_after(cli: Cli, delivered: int) -> set[str]:
    """Start an initial sync, SIGKILL it once ``delivered`` files are recorded as delivered;
    the paths recorded then."""
    process = cli.start("initial-sync", SYNC_WORKERS="4")
    wait_for(lambda: len(delivered_paths(cli)) >= delivered)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return delivered_paths(cli)


def test_a_run_killed_mid_way_resumes_without_delivering_twice(cloud_cli: Cli, source: Source, api: Api) -> None:
    for n in range(60):
        source.put(f"batch/file-{n:03d}.txt", f"content {n}".encode())
    api.faults(fail_rate=1.0, latency_ms=60, seed=1)  # every call slow, none failing
    done_before = killed_after(cloud_cli, 10)
    assert 10 <= len(done_before) < 60, len(done_before)
    api.faults()
    calls_before = len(api.operations())

    resumed = cloud_cli.run("initial-sync")

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not {op["path"] for op in api.operations()[calls_before:] if op["op"] == "saveToDisk"} & done_before
    assert_mirrors(api, source)


def test_incremental_sync_from_the_stores_own_notifications(cloud_cli: Cli, source: Source, api: Api) -> None:
    source.put("keep.txt", b"k")
    source.put("gone soon.txt", b"g")
    assert cloud_cli.run("initial-sync").returncode == 0
    source.put("new folder/new+file ✓.txt", b"fresh", {"read": ["zoe"]})
    source.delete("gone soon.txt")
    created = source.notification("create", "new folder/new+file ✓.txt")
    spool(cloud_cli, "001", created, source.notification("delete", "gone soon.txt"), created)  # one twice

    result = cloud_cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr[-3000:]
    assert report_of(result)["events_applied"] == 2
    assert_mirrors(api, source, {"new folder/new+file ✓.txt": {"read": ["zoe"]}})


def test_reconcile_repairs_drift(cloud_cli: Cli, source: Source, api: Api) -> None:
    for n in range(4):
        source.put(f"r/{n}.txt", b"x")
    assert cloud_cli.run("initial-sync").returncode == 0
    source.put("r/0.txt", b"changed without an event")
    source.delete("r/1.txt")
    source.put("r/new.txt", b"appeared")

    repaired = cloud_cli.run("reconcile")

    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert "1 new, 1 changed, 1 deleted" in repaired.stdout
    assert_mirrors(api, source)


def test_the_live_check_is_named_by_the_store_in_status_the_page_and_health(
        tmp_path: Path, api: Api) -> None:
    """On GCS, the bucket's check is ``gcs`` (not ``s3``) in ``status``, ``status --json``, the
    status page and ``/health``'s reason once the store stops answering."""
    gcs = FakeGcs().start()  # this test's own: it is stopped half-way
    try:
        name = gcs.new_bucket()
        gcs.put(name, PREFIX + "a.txt", b"a")
        workdir = tmp_path / "work"
        workdir.mkdir()
        cli = Cli(workdir, {"SOURCE_URL": f"gs://{name}/{PREFIX}", **gcs.env(), "MOCK_API_URL": api.url,
                            "MAX_RETRIES": "1", "S3_READ_TIMEOUT": "5"})
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        daemon = cli.start("daemon", SYNC_INTERVAL="1", METRICS_PORT=str(port))
        try:
            wait_for(lambda: health_of(base).get("status") == OK, timeout=60)

            text = cli.run("status")
            assert text.returncode == 0, text.stdout + text.stderr
            assert re.search(r"^  gcs +ok \(", text.stdout, re.M) and not re.search(r"^  s3 ", text.stdout, re.M), \
                text.stdout
            checks = json.loads(cli.run("status", "--json").stdout)["checks"]
            assert set(checks) == {"gcs", "api", "database"} and checks["gcs"]["ok"], checks
            assert "gcs ok," in requests.get(f"{base}/", timeout=10).text

            gcs.stop()

            wait_for(lambda: "gcs unreachable" in health_of(base).get("reason", ""), timeout=60)
            failed = cli.run("status")
            assert failed.returncode == 1 and re.search(r"^  gcs +FAILED: listing gs://", failed.stdout, re.M), \
                failed.stdout
        finally:
            stop(daemon)
    finally:
        gcs.stop()


def health_of(base: str) -> dict[str, Any]:
    try:
        return dict(requests.get(f"{base}/health", timeout=10).json())
    except (requests.RequestException, ValueError):
        return {}
