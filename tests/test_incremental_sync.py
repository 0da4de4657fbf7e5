"""Incremental sync end to end: events in a real spool folder, moto's S3, the mock API, the CLI."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_mirrors, ops_of, rename_in_bucket, report_of, sha, spool, synced
from tests.helpers.waiting import wait_for


def test_each_event_type_reaches_the_file_manager(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"a.txt": b"a", "b.txt": b"b", "docs/c.txt": b"c", "d.txt": b"d"})
    bucket.put("new file.txt", b"new", {"read": ["nina"]})
    bucket.client.delete_object(Bucket=bucket.name, Key="d.txt")
    rename_in_bucket(bucket, "b.txt", "b2.txt")
    rename_in_bucket(bucket, "docs/c.txt", "archive/c.txt")
    spool(cli, "001",
          {"event_id": "e1", "type": "create", "path": "new file.txt"},
          {"event_id": "e2", "type": "change_permission", "path": "a.txt", "permissions": {"read": ["ann"]}},
          {"event_id": "e3", "type": "delete", "path": "d.txt"},
          {"event_id": "e4", "type": "rename", "path": "b.txt", "new_path": "b2.txt"},
          {"event_id": "e5", "type": "move", "path": "docs/c.txt", "new_path": "archive/c.txt"})
    before = len(api.operations())

    result = cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert report["events_applied"] == 5
    assert report["operations"] == {"create": 1, "update": 0, "delete": 1, "rename": 1, "move": 1,
                                    "update_permissions": 1}
    assert_mirrors(api, bucket, {"a.txt": {"read": ["ann"]}, "new file.txt": {"read": ["nina"]}})
    assert ("moveFile", "b.txt") in ops_of(api, before)  # renamed, not uploaded again
    assert not (cli.workdir / "data" / "events" / "001.jsonl").exists()
    assert list((cli.workdir / "data" / "events" / "processed").glob("001.*.jsonl"))
    exports = cli.workdir / "data" / "exports"
    assert (exports / f"{report['run_id']}-plan.csv").exists()
    assert (exports / f"{report['run_id']}-old.csv").exists()
    again = cli.run("incremental-sync")
    assert report_of(again)["succeeded"] == 0 and report_of(again)["events_applied"] == 0


def test_swap_and_chain_renames_lose_nothing(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"a": b"AAA", "b": b"BBB", "x/1": b"one", "y/2": b"two"})
    rename_in_bucket(bucket, "a", "tmp")
    rename_in_bucket(bucket, "b", "a")
    rename_in_bucket(bucket, "tmp", "b")
    rename_in_bucket(bucket, "y/2", "z/3")
    rename_in_bucket(bucket, "x/1", "y/2")
    spool(cli, "001",
          {"type": "rename", "path": "a", "new_path": "tmp"},
          {"type": "rename", "path": "b", "new_path": "a"},
          {"type": "rename", "path": "tmp", "new_path": "b"},
          {"type": "move", "path": "y/2", "new_path": "z/3"},
          {"type": "move", "path": "x/1", "new_path": "y/2"})
    before = len(api.operations())

    result = cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr
    assert_mirrors(api, bucket)
    assert api.files()["a"]["sha256"] == sha(b"BBB")
    assert all(op == "moveFile" for op, _ in ops_of(api, before) if op != "syncResults")
    assert report_of(result)["operations"]["rename"] == 2


def test_overwrite_is_uploaded_again(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"report.txt": b"v1"})
    bucket.put("report.txt", b"version two")
    spool(cli, "001", {"type": "create", "path": "report.txt"})
    before = len(api.operations())
    result = cli.run("incremental-sync")
    assert result.returncode == 0, result.stderr
    assert report_of(result)["operations"]["update"] == 1
    assert ("saveToDisk", "report.txt") in ops_of(api, before)
    assert api.files()["report.txt"]["sha256"] == sha(b"version two")
    assert cli.query("SELECT content_version FROM files") == [(2,)]


def test_a_thousand_mixed_events_in_one_run(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {f"base/{n:03d}.txt": f"base {n}".encode() for n in range(150)})
    events: list[dict[str, Any]] = []
    permissions: dict[str, Any] = {}
    for n in range(300):
        bucket.put(f"new/{n:03d}.txt", f"new {n}".encode())
        events.append({"type": "create", "path": f"new/{n:03d}.txt"})
    for n in range(300):
        path = f"new/{n:03d}.txt"
        permissions[path] = {"read": [f"u{n}"]}
        events.append({"type": "change_permission", "path": path, "permissions": permissions[path]})
    for n in range(0, 50):
        bucket.client.delete_object(Bucket=bucket.name, Key=f"base/{n:03d}.txt")
        events.append({"type": "delete", "path": f"base/{n:03d}.txt"})
    for n in range(50, 100):
        rename_in_bucket(bucket, f"base/{n:03d}.txt", f"base/renamed-{n:03d}.txt")
        events.append({"type": "rename", "path": f"base/{n:03d}.txt", "new_path": f"base/renamed-{n:03d}.txt"})
    for n in range(100, 150):
        rename_in_bucket(bucket, f"base/{n:03d}.txt", f"moved/{n:03d}.txt")
        events.append({"type": "move", "path": f"base/{n:03d}.txt", "new_path": f"moved/{n:03d}.txt"})
    for n in range(250):  # permission changes that cancel out: 2 events, no net operation
        path = f"new/{n:03d}.txt"
        events.append({"type": "change_permission", "path": path, "permissions": {"tmp": True}})
        events.append({"type": "change_permission", "path": path, "permissions": permissions[path]})
    assert len(events) == 1250
    # Ids matter here: without one, the repeated permission event would hash like the first.
    events = [{"event_id": f"mixed-{n}", **event} for n, event in enumerate(events)]
    spool(cli, "001", *events[:600])
    spool(cli, "002", *events[600:])

    result = cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert report["events_applied"] == 1250
    assert report["operations"] == {"create": 300, "update": 0, "delete": 50, "rename": 50, "move": 50,
                                    "update_permissions": 0}
    assert_mirrors(api, bucket, permissions)


def test_malformed_lines_are_dead_lettered_and_the_rest_apply(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"keep.txt": b"k", "gone.txt": b"g"})
    bucket.client.delete_object(Bucket=bucket.name, Key="gone.txt")
    spool(cli, "001",
          "{this is not json",
          {"type": "teleport", "path": "keep.txt"},
          {"type": "rename", "path": "keep.txt"},
          {"type": "delete", "path": "../../etc/passwd"},
          {"type": "delete", "path": "gone.txt"})

    result = cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert (report["events_applied"], report["events_rejected"]) == (1, 4)
    assert set(api.files()) == {"keep.txt"}
    letters = sorted((cli.workdir / "data" / "dead-letters").glob("*.json"))
    reasons = [json.loads(p.read_text())["reason"] for p in letters]
    assert len(reasons) == 4
    assert any("bad JSON" in r for r in reasons) and any("unknown event type" in r for r in reasons)
    assert any("new_path" in r for r in reasons) and any("'..'" in r for r in reasons)
    assert json.loads(cli.run("status", "--json").stdout)["dead_letters"] == 4


def test_s3_notifications_with_plus_and_encoded_slash(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"seed.txt": b"s"})
    bucket.put("reports/q3 summary+final.pdf", b"%PDF")
    notification = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": bucket.name},
        "object": {"key": "reports%2Fq3+summary%2Bfinal.pdf", "sequencer": "0A"}}}]}
    spool(cli, "001", notification, notification)  # delivered twice: applies once

    result = cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr
    assert report_of(result)["events_applied"] == 1
    assert api.files()["reports/q3 summary+final.pdf"]["sha256"] == sha(b"%PDF")


def test_killed_mid_plan_then_run_again_ends_exact(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {f"f/{n:02d}.txt": f"file {n}".encode() for n in range(40)})
    events: list[dict[str, Any]] = []
    for n in range(40):
        rename_in_bucket(bucket, f"f/{n:02d}.txt", f"g/{n:02d}.txt")
        events.append({"type": "move", "path": f"f/{n:02d}.txt", "new_path": f"g/{n:02d}.txt"})
        bucket.put(f"h/{n:02d}.txt", f"fresh {n}".encode())
        events.append({"type": "create", "path": f"h/{n:02d}.txt"})
    spool(cli, "001", *events)
    api.faults(fail_rate=1.0, latency_ms=60, seed=3)

    def done_operations() -> int:
        return int(cli.query("SELECT count(*) FROM operations WHERE status = 'done'")[0][0])

    first = cli.start("incremental-sync", SYNC_WORKERS="4")
    wait_for(lambda: done_operations() >= 15)
    first.send_signal(signal.SIGKILL)
    first.wait()
    api.faults()

    second = cli.run("incremental-sync")

    assert second.returncode == 0, second.stderr
    assert_mirrors(api, bucket)


def test_api_down_for_a_whole_run_then_the_next_run_completes(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"a.txt": b"a", "b.txt": b"b"})
    bucket.put("c.txt", b"c")
    rename_in_bucket(bucket, "a.txt", "a2.txt")
    spool(cli, "001", {"type": "create", "path": "c.txt"},
          {"type": "rename", "path": "a.txt", "new_path": "a2.txt"},
          {"type": "change_permission", "path": "b.txt", "permissions": {"r": 1}})

    down = cli.run("incremental-sync", MOCK_API_URL="http://127.0.0.1:9", MAX_RETRIES="1")

    assert down.returncode == 1
    assert report_of(down)["failed"] == 3
    status = json.loads(cli.run("status", "--json").stdout)
    assert status["operations"]["failed"] == 3
    up = cli.run("incremental-sync")
    assert up.returncode == 0, up.stderr
    assert report_of(up)["succeeded"] == 3
    assert_mirrors(api, bucket, {"b.txt": {"r": 1}})
    assert json.loads(cli.run("status", "--json").stdout)["operations"]["failed"] == 0


def test_dry_run_prints_the_plan_and_changes_nothing(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"a.txt": b"a"})
    rename_in_bucket(bucket, "a.txt", "b.txt")
    event_file = spool(cli, "001", {"type": "rename", "path": "a.txt", "new_path": "b.txt"})
    records_before = cli.query("SELECT id, path, content_version FROM files")
    before = len(api.operations())

    result = cli.run("incremental-sync", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "rename             a.txt -> b.txt" in result.stdout
    assert event_file.exists()
    assert len(api.operations()) == before
    assert cli.query("SELECT id, path, content_version FROM files") == records_before
    assert [r[1] for r in records_before] == ["a.txt"]  # the real run still has everything to do
    assert report_of(cli.run("incremental-sync"))["operations"]["rename"] == 1

    bucket.put("later.txt", b"l")
    planned = cli.run("initial-sync", "--dry-run")
    assert "create             later.txt" in planned.stdout
    assert "later.txt" not in api.files()


def test_reconcile_repairs_drift_and_guards_mass_deletes(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {f"r/{n}.txt": b"x" for n in range(10)})
    bucket.put("r/0.txt", b"changed without an event")
    bucket.client.delete_object(Bucket=bucket.name, Key="r/1.txt")
    bucket.put("r/new.txt", b"appeared")

    repaired = cli.run("reconcile")

    assert repaired.returncode == 0, repaired.stderr
    assert "1 new, 1 changed, 1 deleted" in repaired.stdout
    assert_mirrors(api, bucket)

    for n in range(2, 8):
        bucket.client.delete_object(Bucket=bucket.name, Key=f"r/{n}.txt")
    refused = cli.run("reconcile")
    assert refused.returncode == 1
    assert "would delete 6 files" in refused.stderr
    assert len(api.files()) == 10  # nothing changed
    allowed = cli.run("reconcile", "--max-delete", "6")
    assert allowed.returncode == 0, allowed.stderr
    assert_mirrors(api, bucket)


def test_publish_export_and_diff_commands(cli: Cli, bucket: Bucket, api: Api, tmp_path: Path) -> None:
    synced(cli, bucket, {"p.txt": b"p"})
    published = cli.run("publish-event", json.dumps(
        {"type": "change_permission", "path": "p.txt", "permissions": {"read": ["z"]}}))
    assert published.returncode == 0, published.stderr
    assert len(list((cli.workdir / "data" / "events").glob("*.jsonl"))) == 1
    bad = cli.run("publish-event", '{"type": "delete"}')
    assert bad.returncode == 2 and "path" in bad.stderr

    old_csv = tmp_path / "old.csv"
    assert cli.run("export-csv", "--out", str(old_csv)).returncode == 0
    assert cli.run("incremental-sync").returncode == 0
    new_csv = tmp_path / "new.csv"
    assert cli.run("export-csv", "--out", str(new_csv)).returncode == 0
    plan = cli.run("diff", str(old_csv), str(new_csv))
    assert plan.returncode == 0
    assert plan.stdout.splitlines()[0].startswith("update_permissions p.txt")
    assert api.files()["p.txt"]["permissions"] == {"read": ["z"]}
    assert cli.run("diff", str(old_csv), str(tmp_path / "missing.csv")).returncode == 2


@pytest.mark.parametrize("fixture_name", ["native.jsonl", "legacy.jsonl"])
def test_fixture_streams_apply(cli: Cli, bucket: Bucket, api: Api, fixture_name: str) -> None:
    synced(cli, bucket, {"seed.txt": b"s"})
    bucket.put("docs/new plan.md", b"plan")
    bucket.put("documents/contract.pdf", b"contract")  # there when the create event is read
    bucket.put("documents/contract-signed.pdf", b"contract")  # there after the rename
    fixtures = Path(__file__).resolve().parent / "fixtures" / "events"
    (cli.workdir / "data" / "events").mkdir(parents=True, exist_ok=True)
    (cli.workdir / "data" / "events" / fixture_name).write_text((fixtures / fixture_name).read_text())
    result = cli.run("incremental-sync")
    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert report["events_rejected"] == 0
    if fixture_name == "legacy.jsonl":
        assert api.files()["documents/contract-signed.pdf"]["permissions"] == {"mode": "rw-r-----"}
    else:  # created, renamed, moved and deleted within one run: nothing left to do
        assert set(api.files()) == {"seed.txt"}


def test_incremental_sync_retries_what_an_initial_sync_failed_to_deliver(cli: Cli, bucket: Bucket, api: Api) -> None:
    bucket.put("ok.txt", b"ok")
    bucket.put("refused/r.txt", b"r", {"read": ["rita"]})
    api.faults(fail_rate=1.0, status=400, match="refused/")
    assert cli.run("initial-sync").returncode == 1
    api.faults()

    result = cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr
    assert report_of(result)["operations"]["create"] == 1
    assert_mirrors(api, bucket, {"refused/r.txt": {"read": ["rita"]}})
    assert json.loads(cli.run("status", "--json").stdout)["operations"]["failed"] == 0


def test_reconcile_dry_run_lists_the_drift_and_changes_nothing(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"a.txt": b"a", "b.txt": b"b"})
    bucket.put("c.txt", b"c")
    dry = cli.run("reconcile", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "new      c.txt" in dry.stdout and "nothing was changed" in dry.stdout
    assert "c.txt" not in api.files()


def test_a_folder_notification_is_skipped_not_dead_lettered(cli: Cli, bucket: Bucket, api: Api) -> None:
    # given a bucket notification for a folder made in a console, and one for a file
    synced(cli, bucket, {"photos/a.jpg": b"a"})
    bucket.put("photos/b.jpg", b"b")
    record = {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": bucket.name},
                                                          "object": {"key": "photos%2F2026%2F", "size": 0}}}
    file_record = {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": bucket.name},
                                                               "object": {"key": "photos/b.jpg"}}}
    spool(cli, "001", {"Records": [record]}, {"Records": [file_record]})
    # when the incremental sync runs
    result = cli.run("incremental-sync")
    # then the folder is skipped and counted, nothing is rejected, and the file arrives
    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert (report["events_rejected"], report["skipped_reasons"]) == (0, {"folder_marker": 1})
    assert not (cli.workdir / "data" / "dead-letters").exists()
    assert_mirrors(api, bucket)


def test_keys_with_c1_controls_or_backslashes_are_skipped_as_invalid(cli: Cli, bucket: Bucket, api: Api) -> None:
    # given keys S3 accepts but the file manager must not get (SPEC §3)
    for key in ("ok.txt", "next\x85line.txt", "dir\\file.txt"):
        bucket.put(key, b"x")
    # when the initial sync runs
    result = cli.run("initial-sync")
    # then only the valid one is delivered, the others are counted as invalid keys
    assert result.returncode == 0, result.stderr
    assert report_of(result)["skipped_reasons"] == {"invalid_key": 2}
    assert list(api.files()) == ["ok.txt"]
