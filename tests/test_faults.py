"""The fault matrix (README, Reliability): each fault forced on real servers, each case ending
with the file manager equal to the bucket and nothing applied twice."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.helpers.fault_proxy import FaultyS3Proxy
from tests.helpers.harness import TEST_DATABASE_URL, Api, Bucket, Cli
from tests.helpers.sync import assert_api_matches_bucket, assert_nothing_applied_twice, report_of, sha


def fill(bucket: Bucket) -> dict[str, bytes]:
    # big.bin is over INLINE_BODY_BYTES (256 KiB): its body is streamed from S3 to the file manager.
    objects = {"a.txt": b"alpha", "docs/big.bin": os.urandom(300 * 1024), "z.txt": b"zulu"}
    for key, body in objects.items():
        bucket.put(key, body)
    return objects


# -- the check itself -----------------------------------------------------------------------------

# The initial sync in a process whose client sends every upload twice, the second with the same
# Idempotency-Key: the bug the check below is there to catch. Patching is the forced fault.
SENDS_EACH_UPLOAD_TWICE = """
import sys
from unittest import mock

from sync_service.clients.infrastructure_api import FileManagerSession
from sync_service.main import main

honest = FileManagerSession.save_to_disk

async def twice(self, path, open_body, **kwargs):
    await honest(self, path, open_body, **kwargs)
    return await honest(self, path, open_body, **kwargs)

with mock.patch.object(FileManagerSession, "save_to_disk", twice):
    sys.exit(main(["initial-sync"]))
"""


@pytest.mark.parametrize("client", ["honest", "sends each upload twice"])
def test_the_applied_twice_check_fails_a_client_that_sends_one_upload_twice(
        cli: Cli, bucket: Bucket, api: Api, client: str) -> None:
    fill(bucket)

    if client == "honest":
        result = cli.run("initial-sync")
    else:
        result = subprocess.run([sys.executable, "-c", SENDS_EACH_UPLOAD_TWICE], cwd=cli.workdir,
                                env=cli.full_env(), capture_output=True, text=True, timeout=180)

    assert result.returncode == 0, result.stderr[-3000:]
    # The replays changed nothing (SPEC §3): what the mock stores is right either way, and each
    # key was applied once, which is all a log of applied calls could have shown.
    assert_api_matches_bucket(api, bucket, {})
    applied = Counter(op["idempotency_key"] for op in api.operations() if not op["replay"])
    assert set(applied.values()) == {1}
    if client == "honest":
        assert_nothing_applied_twice(api)
    else:
        assert api.stats()["replayed"] == 3
        with pytest.raises(AssertionError, match="uploads sent more than once"):
            assert_nothing_applied_twice(api)


# -- S3 faults, through a proxy in front of moto --------------------------------------------------

def test_s3_slowdown_with_retry_after_is_retried_and_delivered(cli: Cli, bucket: Bucket, api: Api) -> None:
    objects = fill(bucket)

    with FaultyS3Proxy(bucket.endpoint, {"docs/big.bin": ["slowdown", "slowdown"]}) as proxy:
        result = cli.run("initial-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint)

    assert result.returncode == 0, result.stderr[-3000:]
    assert proxy.applied == [("docs/big.bin", "slowdown")] * 2
    times = [at for path, at in proxy.gets if path.endswith("/docs/big.bin")]
    assert len(times) == 3 and all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times  # Retry-After: 1
    assert report_of(result)["failed"] == 0
    assert api.files()["docs/big.bin"]["sha256"] == sha(objects["docs/big.bin"])
    assert_api_matches_bucket(api, bucket, {})
    assert_nothing_applied_twice(api)


# A reset shows as the peer's reset or, when the reset lands between reads, as a body shorter
# than its Content-Length; either way the body broke, and not by a timeout.
EXPECTED_CAUSE = {"reset": ("reset by peer", "Not enough data"), "stall": ("Timeout on reading",)}


@pytest.mark.parametrize("fault", ["reset", "stall"])
def test_s3_body_broken_mid_stream_fails_that_object_alone_and_the_next_run_delivers_it(
        cli: Cli, bucket: Bucket, api: Api, fault: str) -> None:
    fill(bucket)

    with FaultyS3Proxy(bucket.endpoint, {"docs/big.bin": [fault]}, stall_s=4.0) as proxy:
        first = cli.run("initial-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint, S3_READ_TIMEOUT="1")

    assert first.returncode == 1, first.stderr[-3000:]
    assert proxy.applied == [("docs/big.bin", fault)]
    report = report_of(first)
    assert report["succeeded"] == 2 and report["failed"] == 1
    assert [f["path"] for f in report["failures"]] == ["docs/big.bin"]
    assert any(cause in report["failures"][0]["error"] for cause in EXPECTED_CAUSE[fault]), report
    assert set(api.files()) == {"a.txt", "z.txt"}  # no half file stored

    second = cli.run("incremental-sync")  # any later run retries what failed
    assert second.returncode == 0, second.stderr[-3000:]
    assert_api_matches_bucket(api, bucket, {})
    assert_nothing_applied_twice(api)


@pytest.mark.parametrize("fault", ["reset", "stall"])
def test_small_s3_body_broken_mid_answer_is_read_again_within_the_run(
        cli: Cli, bucket: Bucket, api: Api, fault: str) -> None:
    # An object of at most INLINE_BODY_BYTES is read whole before anything is sent on, so a
    # body that breaks is one failed attempt of its GET: read again by the same retry loop.
    small = os.urandom(64 * 1024)
    bucket.put("docs/small.bin", small)
    with FaultyS3Proxy(bucket.endpoint, {"docs/small.bin": [fault]}, stall_s=4.0) as proxy:
        run = cli.run("initial-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint, S3_READ_TIMEOUT="1")

    assert run.returncode == 0, run.stderr[-3000:]
    assert proxy.applied == [("docs/small.bin", fault)]
    assert len([path for path, _ in proxy.gets if path.endswith("/docs/small.bin")]) == 2
    assert api.files()["docs/small.bin"]["sha256"] == sha(small)
    assert_nothing_applied_twice(api)


# -- API faults -----------------------------------------------------------------------------------

@pytest.fixture
def failing_report_url() -> Iterator[tuple[str, list[bytes]]]:
    """A report endpoint that answers 500 to every post, and the bodies it was sent."""
    posted: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            posted.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/syncResults", posted
    server.shutdown()
    server.server_close()


def test_every_report_post_answered_500_the_run_still_succeeds_and_keeps_its_report(
        cli: Cli, bucket: Bucket, api: Api, failing_report_url: tuple[str, list[bytes]]) -> None:
    url, posted = failing_report_url
    fill(bucket)

    result = cli.run("initial-sync", REPORT_URLS=url, MAX_RETRIES="2")

    assert result.returncode == 0, result.stderr[-3000:]
    report = report_of(result)
    assert len(posted) == 3  # tried, retried, given up: one retry loop
    assert {json.loads(body)["run_id"] for body in posted} == {report["run_id"]}
    stored = cli.workdir / "data" / "reports" / f"{report['run_id']}.json"
    assert json.loads(stored.read_text())["succeeded"] == 3
    [(status, kept)] = cli.query("SELECT status, report FROM runs WHERE run_id = ?", (report["run_id"],))
    assert status == "ok" and json.loads(kept)["succeeded"] == 3
    assert_api_matches_bucket(api, bucket, {})
    assert [op["op"] for op in api.operations()].count("saveToDisk") == 3  # nothing else sent

    again = cli.run("incremental-sync", REPORT_URLS=url, MAX_RETRIES="2")
    assert again.returncode == 0 and report_of(again)["succeeded"] == 0


def test_api_hanging_past_api_timeout_fails_that_operation_and_a_later_run_delivers_it(
        cli: Cli, bucket: Bucket, api: Api) -> None:
    objects = fill(bucket)
    api.faults(fail_rate=1.0, latency_ms=4000, match="docs/big.bin")

    first = cli.run("initial-sync", API_TIMEOUT="1", MAX_RETRIES="1")

    assert first.returncode == 1, first.stderr[-3000:]
    report = report_of(first)
    assert [f["path"] for f in report["failures"]] == ["docs/big.bin"]
    assert "Timeout" in report["failures"][0]["error"], report["failures"]
    api.faults()

    second = cli.run("incremental-sync")
    assert second.returncode == 0, second.stderr[-3000:]
    assert api.files()["docs/big.bin"]["sha256"] == sha(objects["docs/big.bin"])
    # The mock still finishes the calls it held for 4 s after the client gave up on them: let
    # them land here, in this test's log, not in the next test's after its reset.
    api.settled()
    assert_api_matches_bucket(api, bucket, {})
    # The client timed out on big.bin's answers, so it rightly sent it again.
    assert_nothing_applied_twice(api, answers_lost={"docs/big.bin"})


# -- a damaged database ---------------------------------------------------------------------------

DB_COMMANDS = [("initial-sync",), ("incremental-sync",), ("reconcile",), ("status",), ("check",),
               ("export-csv",), ("daemon",)]


def damage(db: Path, how: str, good: bytes) -> None:
    """Random bytes over the first page (its header included), or the file cut to half."""
    db.write_bytes(os.urandom(4096) + good[4096:] if how == "garbage" else good[: len(good) // 2])
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="a damaged SQLite file: SQLite's own case")
@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_damaged_database_stops_every_command_with_one_line_naming_it_and_exit_2(
        cli: Cli, bucket: Bucket, api: Api, how: str) -> None:
    fill(bucket)
    for number in range(40):
        bucket.put(f"more/{number}.txt", os.urandom(100))
    assert cli.run("initial-sync").returncode == 0
    db = cli.workdir / "data" / "sync.db"
    good = db.read_bytes()
    requests.post(f"{api.url}/admin/reset", timeout=10).raise_for_status()

    for command in DB_COMMANDS:
        damage(db, how, good)
        result = cli.run(*command, timeout=60, METRICS_PORT="0")
        assert result.returncode == 2, (command, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("database error: data/sync.db is not a usable"), \
            (command, result.stderr[-2000:])
    assert api.operations() == [], api.operations()
    assert requests.get(f"{api.url}/syncResults", timeout=10).json() == []
