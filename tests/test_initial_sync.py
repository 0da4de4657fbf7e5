"""Initial sync end to end: the CLI as a process, moto's S3 over HTTP, the mock API on a port."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from devtools.local_servers import SECRET_KEY
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_api_matches_bucket, delivered_paths, report_of, sha
from tests.helpers.waiting import wait_for


def test_bytes_and_permissions_arrive_for_awkward_keys(cli: Cli, bucket: Bucket, api: Api) -> None:
    big = os.urandom(21 * 1024 * 1024)
    permissions = {
        "with space/file name.txt": {"read": ["alice", "bob"], "write": ["alice"]},
        "unicode/übersicht ✓ 日本.txt": {"visibility": "public"},
    }
    objects = {
        "with space/file name.txt": b"spaces",
        "unicode/übersicht ✓ 日本.txt": "unicode ✓".encode(),
        "plus+sign.txt": b"plus",
        "percent%20literal%2F.txt": b"percent",
        "deep/a/b/c/d/e/f/g/h/leaf.bin": os.urandom(3000),
        "zero-bytes.bin": b"",
        "large/twenty-one-mb.bin": big,
    }
    for key, body in objects.items():
        bucket.put(key, body, permissions.get(key))

    result = cli.run("initial-sync")

    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert report["operations"]["create"] == len(objects)
    assert report["failed"] == 0
    assert_api_matches_bucket(api, bucket, permissions)
    exports = list((cli.workdir / "data" / "exports").glob("*-state.csv"))
    assert len(exports) == 1 and "percent%20literal%2F.txt" in exports[0].read_text()
    stored = json.loads((cli.workdir / "data" / "reports" / f"{report['run_id']}.json").read_text())
    assert stored["succeeded"] == len(objects)
    sent = [op for op in api.operations() if op["op"] == "syncResults"]
    assert len(sent) == 1


def test_second_run_uploads_nothing_and_changes_are_picked_up(cli: Cli, bucket: Bucket, api: Api) -> None:
    bucket.put("a.txt", b"one")
    bucket.put("b.txt", b"two")
    bucket.put("c.txt", b"three")
    assert cli.run("initial-sync").returncode == 0
    first_ops = len(api.operations())

    again = cli.run("initial-sync")
    assert again.returncode == 0
    assert report_of(again)["skipped_reasons"] == {"unchanged": 3}
    assert [op["op"] for op in api.operations()[first_ops:]] == ["syncResults"]

    bucket.put("a.txt", b"one, edited")  # new content
    bucket.client.copy_object(  # same content, new permissions metadata
        Bucket=bucket.name, Key="b.txt", CopySource={"Bucket": bucket.name, "Key": "b.txt"},
        Metadata={"permissions": '{"read":["carol"]}'}, MetadataDirective="REPLACE")
    # Last-modified has one-second resolution: the second copy has to come a second later.
    first = bucket.client.head_object(Bucket=bucket.name, Key="b.txt")["LastModified"]
    wait_for(lambda: datetime.now(UTC) >= first + timedelta(seconds=1), 5, "the next second")
    bucket.client.copy_object(
        Bucket=bucket.name, Key="b.txt", CopySource={"Bucket": bucket.name, "Key": "b.txt"},
        Metadata={"permissions": '{"read":["carol"]}'}, MetadataDirective="REPLACE")
    third = cli.run("initial-sync")
    assert third.returncode == 0, third.stderr
    ops = report_of(third)["operations"]
    assert ops["update"] == 1
    assert ops["update_permissions"] == 1
    assert api.files()["a.txt"]["sha256"] == sha(b"one, edited")
    assert api.files()["b.txt"]["permissions"] == {"read": ["carol"]}
    versions = dict(cli.query("SELECT path, content_version FROM files"))
    assert versions == {"a.txt": 2, "b.txt": 1, "c.txt": 1}


def test_invalid_keys_and_folder_markers_are_skipped_and_counted(cli: Cli, bucket: Bucket, api: Api) -> None:
    invalid = ["a//b.txt", "dir/./x.txt", "dir/../escape.txt", "/abs.txt", "bell\x07.txt",
               "x" * 1025]
    for key in invalid:
        bucket.put(key, b"bad")
    bucket.put("photos/", b"")
    bucket.put("photos/good.jpg", b"good")

    result = cli.run("initial-sync")

    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert report["skipped_reasons"] == {"invalid_key": len(invalid), "folder_marker": 1}
    assert report["succeeded"] == 1
    assert set(api.files()) == {"photos/good.jpg"}
    assert "not a valid path" in result.stderr


def test_prefix_limits_the_scan_and_paths_are_relative(cli: Cli, bucket: Bucket, api: Api) -> None:
    bucket.put("team/docs/a.txt", b"in")
    bucket.put("other/b.txt", b"out")
    result = cli.run("initial-sync", CUSTOMER_S3_PREFIX="team")
    assert result.returncode == 0, result.stderr
    assert set(api.files()) == {"docs/a.txt"}


def test_killed_run_resumes_without_uploading_finished_files_again(cli: Cli, bucket: Bucket, api: Api) -> None:
    for n in range(120):
        bucket.put(f"batch/file-{n:03d}.txt", f"content {n}".encode())
    api.faults(fail_rate=1.0, latency_ms=60, seed=1)  # every call slow, none failing
    first = cli.start("initial-sync", SYNC_WORKERS="4")
    wait_for(lambda: len(delivered_paths(cli)) >= 20)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = delivered_paths(cli)
    assert 20 <= len(done_before) < 120, len(done_before)
    api.faults()
    uploads_before = len(api.operations())

    second = cli.run("initial-sync")

    assert second.returncode == 0, second.stderr
    uploaded_again = [op["path"] for op in api.operations()[uploads_before:] if op["op"] == "saveToDisk"]
    assert not set(uploaded_again) & done_before, (set(uploaded_again) & done_before, second.stderr[-3000:])
    assert len(uploaded_again) <= 120 - len(done_before)  # those in flight are replayed, not redone
    assert_api_matches_bucket(api, bucket, {})


def test_a_quarter_of_calls_answered_503_still_delivers_every_file_once(cli: Cli, bucket: Bucket, api: Api) -> None:
    for n in range(40):
        bucket.put(f"f/{n:02d}.txt", f"body {n}".encode(), {"read": [f"user{n}"]})
    api.faults(fail_rate=0.25, status=503, seed=42)

    result = cli.run("initial-sync", MAX_RETRIES="12")

    assert result.returncode == 0, result.stderr
    api.faults()
    assert_api_matches_bucket(api, bucket, {f"f/{n:02d}.txt": {"read": [f"user{n}"]} for n in range(40)})
    saves = Counter(op["path"] for op in api.operations() if op["op"] == "saveToDisk")
    assert set(saves.values()) == {1} and len(saves) == 40, saves
    stats = api.stats()
    assert stats["faulted"] > 0


def test_permanent_400_is_a_recorded_failure_with_exit_1(cli: Cli, bucket: Bucket, api: Api) -> None:
    bucket.put("good/ok.txt", b"fine")
    bucket.put("bad/refused.txt", b"refused")
    api.faults(fail_rate=1.0, status=400, match="bad/")

    result = cli.run("initial-sync")

    assert result.returncode == 1
    report = report_of(result)
    assert report["failed"] == 1
    assert report["failures"][0]["path"] == "bad/refused.txt"
    assert "400" in report["failures"][0]["error"]
    assert set(api.files()) == {"good/ok.txt"}
    status = json.loads(cli.run("status", "--json").stdout)
    assert status["operations"]["failed"] == 1
    assert status["last_runs"]["initial-sync"]["status"] == "failed"

    api.faults()
    retry = cli.run("initial-sync")
    assert retry.returncode == 0
    assert set(api.files()) == {"good/ok.txt", "bad/refused.txt"}
    counted = report_of(retry)  # the retried create, counted once though the run lists after it
    assert (counted["succeeded"], counted["failed"], counted["operations"]["create"]) == (1, 0, 1)
    assert json.loads(cli.run("status", "--json").stdout)["operations"]["failed"] == 0


def test_second_concurrent_sync_is_refused_with_exit_3(cli: Cli, bucket: Bucket, api: Api) -> None:
    for n in range(30):
        bucket.put(f"slow/{n}.txt", b"x")
    # every call slow: the first sync holds the lock for 30 s at least, however busy the machine
    api.faults(fail_rate=1.0, latency_ms=1000, seed=1)
    first = cli.start("initial-sync", SYNC_WORKERS="1")
    try:
        wait_for(lambda: cli.query("SELECT count(*) FROM runs WHERE status = 'running'") == [(1,)])
        started = time.monotonic()
        second = cli.run("initial-sync")
        assert second.returncode == 3
        assert time.monotonic() - started < 15
        assert "holds the lock" in second.stderr
        status = json.loads(cli.run("status", "--json").stdout)
        assert status["sync_running"] is True
    finally:
        first.kill()
        first.wait()


def test_configuration_errors_exit_2_with_one_line_naming_the_variable(cli: Cli) -> None:
    for name, value in [("SYNC_WORKERS", "0"), ("MOCK_API_URL", "not a url"), ("LOG_FORMAT", "xml"),
                        ("S3_ADDRESSING", "sideways")]:
        result = cli.run("initial-sync", **{name: value})
        assert result.returncode == 2
        assert name in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    missing = cli.run("initial-sync", CUSTOMER_S3_BUCKET="")
    assert missing.returncode == 2 and "CUSTOMER_S3_BUCKET" in missing.stderr
    assert cli.run("no-such-command").returncode == 2


def test_env_file_configures_the_run(cli: Cli, bucket: Bucket, api: Api) -> None:
    bucket.put("from-env-file.txt", b"x")
    env = cli.env
    (cli.workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    cli.env = {}
    result = cli.run("initial-sync")
    assert result.returncode == 0, result.stderr
    assert set(api.files()) == {"from-env-file.txt"}


def test_status_reports_records_runs_and_live_checks_without_secrets(cli: Cli, bucket: Bucket, api: Api) -> None:
    bucket.put("one.txt", b"1")
    assert cli.run("initial-sync", API_TOKEN="").returncode == 0
    text = cli.run("status")
    assert text.returncode == 0, text.stderr
    assert "records       1" in text.stdout
    data = json.loads(cli.run("status", "--json").stdout)
    assert data["records"] == 1
    assert data["last_runs"]["initial-sync"]["status"] == "ok"
    assert all(check["ok"] for check in data["checks"].values())
    log = (cli.workdir / "logs" / "sync.log").read_text()
    for output in (text.stdout, text.stderr, log):
        assert SECRET_KEY not in output

    down = cli.run("status", "--json", MOCK_API_URL="http://127.0.0.1:9")
    assert down.returncode == 1
    assert json.loads(down.stdout)["checks"]["api"]["ok"] is False


def test_unreachable_api_fails_the_run_and_records_nothing_delivered(cli: Cli, bucket: Bucket) -> None:
    bucket.put("a.txt", b"a")
    result = cli.run("initial-sync", MOCK_API_URL="http://127.0.0.1:9", MAX_RETRIES="1")
    assert result.returncode == 1
    assert report_of(result)["failed"] == 1
    assert delivered_paths(cli) == set()
