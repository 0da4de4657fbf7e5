"""Filters end to end: INCLUDE/EXCLUDE/MIN_SIZE/MAX_SIZE on initial sync (and its JSON dry run),
on events, and on reconcile after the rules change, under the delete guard. The CLI as a
process, moto's S3 over HTTP, the mock API on a port."""

from __future__ import annotations

import json
from pathlib import Path

from sync_service.clients.file_spool import FileSpoolSource
from sync_service.clients.storage.s3 import S3Store
from sync_service.planning.filters import ObjectFilter
from sync_service.sources.event_processor import EventProcessor
from sync_service.store.database_manager import DatabaseManager
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import rename_in_bucket, report_of, sha, spool, synced, write_spool


def test_initial_sync_delivers_only_what_the_rules_select_and_its_json_dry_run_says_so(
        cli: Cli, bucket: Bucket, api: Api) -> None:
    # given a bucket with what people filter out, and rules for it
    kept = {"docs/a.txt": b"a" * 10, "photos/2026/b.jpg": b"b" * 100}
    left_out = {"docs/a.tmp": "excluded", "photos/.DS_Store": "excluded",
                "docs/_temporary/0/part-0": "excluded", "notes/c.txt": "not_included",
                "docs/big.bin": "too_large", "docs/empty.txt": "too_small"}
    for key, body in kept.items():
        bucket.put(key, body, {"read": ["ann"]})
    for key in left_out:
        body = b"x" * 2048 if key == "docs/big.bin" else b"" if key == "docs/empty.txt" else b"x"
        bucket.put(key, body)
    cli.env.update(INCLUDE="docs/**, photos/**", EXCLUDE="*.tmp\n.DS_Store\n_temporary/**",
                   MIN_SIZE="1", MAX_SIZE="1K")

    # when the plan is printed as JSON lines
    planned = cli.run("initial-sync", "--dry-run", "--json")

    # then every stdout line is one JSON object: the creates with their content, the skips
    # with their reasons; and nothing was stored or sent
    assert planned.returncode == 0, planned.stderr
    entries = [json.loads(line) for line in planned.stdout.splitlines()]
    creates = {e["path"]: e for e in entries if e["op"] == "create"}
    assert set(creates) == set(kept)
    assert creates["docs/a.txt"]["size"] == 10 and creates["docs/a.txt"]["etag"]
    assert creates["docs/a.txt"]["permissions"] is None  # read from the object on delivery
    assert {e["path"]: e["reason"] for e in entries if e["op"] == "skip"} == left_out
    assert api.files() == {}
    assert cli.query("SELECT count(*) FROM files") in ([], [(0,)])
    assert cli.query("SELECT count(*) FROM runs") in ([], [(0,)])

    # when the initial sync runs
    result = cli.run("initial-sync")

    # then the file manager holds the selected objects only, and the skips are counted by reason
    assert result.returncode == 0, result.stderr
    files = api.files()
    assert {p: f["sha256"] for p, f in files.items()} == {k: sha(b) for k, b in kept.items()}
    assert files["docs/a.txt"]["permissions"] == {"read": ["ann"]}
    assert report_of(result)["skipped_reasons"] == {"excluded": 3, "not_included": 1,
                                                    "too_large": 1, "too_small": 1}
    # and check compares the filtered view: consistent
    checked = cli.run("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_rename_into_an_excluded_name_deletes_the_file_at_once(cli: Cli, bucket: Bucket,
                                                                 api: Api) -> None:
    # given a synced bucket under EXCLUDE=*.tmp
    cli.env["EXCLUDE"] = "*.tmp"
    synced(cli, bucket, {"a.txt": b"a", "b.txt": b"b", "c.tmp": b"c"})
    assert set(api.files()) == {"a.txt", "b.txt"}
    # when a.txt is renamed to a.tmp, and excluded objects are created and changed
    rename_in_bucket(bucket, "a.txt", "a.tmp")
    bucket.put("new.tmp", b"n")
    spool(cli, "001",
          {"event_id": "e1", "type": "rename", "path": "a.txt", "new_path": "a.tmp"},
          {"event_id": "e2", "type": "create", "path": "new.tmp"},
          {"event_id": "e3", "type": "change_permission", "path": "c.tmp", "permissions": {"r": 1}})
    result = cli.run("incremental-sync")
    # then the renamed file leaves the file manager in this cycle, the rest is left alone
    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert set(api.files()) == {"b.txt"}
    assert report["operations"]["delete"] == 1
    assert report["skipped_reasons"] == {"excluded": 3}
    assert cli.query("SELECT path FROM files") == [("b.txt",)]
    # and a reconcile finds nothing left to repair
    repaired = cli.run("reconcile")
    assert repaired.returncode == 0, repaired.stderr
    assert "0 new, 0 changed, 0 deleted" in repaired.stdout


def test_a_rules_change_is_applied_by_reconcile_under_the_delete_guard(cli: Cli, bucket: Bucket,
                                                                       api: Api) -> None:
    # given eleven synced files, and then a rule that leaves one out
    synced(cli, bucket, {**{f"r/{n}.txt": b"x" for n in range(10)}, "r/debug.log": b"log"})
    cli.env["EXCLUDE"] = "*.log"
    # when reconcile runs
    repaired = cli.run("reconcile")
    # then the file manager mirrors the filtered view
    assert repaired.returncode == 0, repaired.stderr
    assert "0 new, 0 changed, 1 deleted" in repaired.stdout
    assert set(api.files()) == {f"r/{n}.txt" for n in range(10)}

    # when the rules change to leave out half of the files: more than the guard allows
    cli.env["EXCLUDE"] = "*.log,r/[0-4].txt"
    refused = cli.run("reconcile")
    # then the repair is refused, nothing deleted
    assert refused.returncode == 1
    assert "would delete 5 files" in refused.stderr
    assert len(api.files()) == 10
    # and an operator who means it lets it through
    allowed = cli.run("reconcile", "--max-delete", "5")
    assert allowed.returncode == 0, allowed.stderr
    assert set(api.files()) == {f"r/{n}.txt" for n in range(5, 10)}


def test_a_bad_rule_stops_the_command_with_exit_2_naming_the_variable(cli: Cli) -> None:
    result = cli.run("initial-sync", MAX_SIZE="huge")
    assert result.returncode == 2
    assert "MAX_SIZE must be a size" in result.stderr
    assert "Traceback" not in result.stderr


def test_replay_sizes_objects_by_the_notification_or_a_head(tmp_path: Path, bucket: Bucket,
                                                            state_db: DatabaseManager) -> None:
    # given a record of a small object, and MAX_SIZE=1K
    source = FileSpoolSource(tmp_path / "events")
    replayer = EventProcessor(state_db, S3Store(bucket.client, bucket.name), source,
                              dead_letters_dir=tmp_path / "dead", permissions_key="permissions",
                              default_permissions={}, bucket=bucket.name,
                              rules=ObjectFilter(max_size=1024))
    state_db.records.upsert("grown.bin", 10, "e1", "", "{}")
    bucket.put("big.bin", b"x" * 2048)
    bucket.put("small.bin", b"x" * 10)
    grown = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": bucket.name}, "object": {"key": "grown.bin", "size": 4096, "eTag": "e2"}}}]}
    write_spool(source.folder, "001.jsonl", [
        grown,  # the notification says the size: no request to S3
        {"event_id": "b", "type": "create", "path": "big.bin"},  # a HEAD says it
        {"event_id": "s", "type": "create", "path": "small.bin"},
    ])
    # when the events are replayed
    result = replayer.replay()
    # then what grew past the bound leaves the view, what is past it never enters
    assert [r.path for r in state_db.iter_records()] == ["small.bin"]
    assert (result.applied, result.skipped) == (1, {"too_large": 2})
