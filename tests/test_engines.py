"""One engine on both databases (SPEC §1): the same bucket synced with the state in SQLite, and
with the state in PostgreSQL beside two workers that apply part of each plan, gives the same
reports (counts by kind, bytes, skips) and the same file manager, for an initial sync and for
an incremental sync of the same events."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import rename_in_bucket, spool

COMPARED = ("operations", "succeeded", "failed", "skipped", "skipped_reasons", "bytes_transferred",
            "events_applied", "events_rejected")


def fill(bucket: Bucket) -> None:
    """Files with and without permissions, a large one, a folder marker and an invalid key."""
    for key in list(bucket.contents()):
        bucket.client.delete_object(Bucket=bucket.name, Key=key)
    for n in range(40):
        bucket.put(f"p/{n:02d}.txt", f"content {n}".encode(), {"read": [f"u{n}"]} if n % 2 else None)
    bucket.put("docs/a.txt", b"a" * 3000)
    bucket.put("big.bin", bytes(range(256)) * 4096)
    bucket.put("folder/", b"")
    bucket.put("bad/../key", b"x")


def synced(cli: Cli, api: Api, bucket: Bucket, workdir: Path, database: dict[str, str], *,
           workers: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """From an empty file manager answering in 20 ms: an initial sync, then the bucket changed
    and one incremental sync of the events that say so (a rename, a delete, a permission
    change, a new object, a malformed line); their reports and what the file manager holds."""
    requests.post(f"{api.url}/admin/reset", timeout=10).raise_for_status()
    api.faults(fail_rate=1.0, latency_ms=20, seed=1)
    fill(bucket)
    workdir.mkdir()
    cli.workdir = workdir
    cli.env = {k: v for k, v in cli.env.items() if k != "DATABASE_URL"} | database
    helpers = [cli.start("worker", SYNC_WORKERS="2", WORKER_BATCH="4") for _ in range(workers)]
    try:
        initial = cli.run("initial-sync", SYNC_WORKERS="2", WORKER_BATCH="4")
        assert initial.returncode == 0, initial.stderr[-3000:]
        rename_in_bucket(bucket, "docs/a.txt", "docs/c.txt")
        bucket.client.delete_object(Bucket=bucket.name, Key="big.bin")
        bucket.put("new.txt", b"new")
        spool(cli, "001", {"event_id": "1", "type": "rename", "path": "docs/a.txt", "new_path": "docs/c.txt"},
              {"event_id": "2", "type": "delete", "path": "big.bin"},
              {"event_id": "3", "type": "change_permission", "path": "p/01.txt",
               "permissions": {"read": ["bob"]}},
              {"event_id": "4", "type": "create", "path": "new.txt"}, "not json")
        incremental = cli.run("incremental-sync", SYNC_WORKERS="2", WORKER_BATCH="4")
        assert incremental.returncode == 0, incremental.stderr[-3000:]
    finally:
        for helper in helpers:
            helper.send_signal(signal.SIGTERM)
        for helper in helpers:
            helper.wait(timeout=60)
    api.faults()
    return [json.loads(initial.stdout), json.loads(incremental.stdout)], api.files()


@pytest.mark.scale
def test_the_same_bucket_reports_the_same_on_sqlite_and_on_postgresql(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str, tmp_path: Path) -> None:
    # when the bucket is synced with the state in SQLite, and again from scratch with the state
    # in PostgreSQL while two workers share the work
    on_sqlite, files_sqlite = synced(cli, api, bucket, tmp_path / "sqlite", {}, workers=0)
    on_postgresql, files_postgresql = synced(cli, api, bucket, tmp_path / "postgresql",
                                             {"DATABASE_URL": postgres_url}, workers=2)
    # then the workers applied part of it
    claimers = {row[0] for row in cli.query("SELECT DISTINCT claimed_by FROM operations")}
    assert any(not c.startswith("run:") for c in claimers), claimers
    # and both reports say the same, and the file manager holds the same
    for sqlite, postgresql in zip(on_sqlite, on_postgresql, strict=True):
        assert {k: sqlite[k] for k in COMPARED} == {k: postgresql[k] for k in COMPARED}
    initial, incremental = on_sqlite
    assert initial["operations"]["create"] == 42 and initial["bytes_transferred"] > 1_000_000
    assert initial["skipped_reasons"] == {"folder_marker": 1, "invalid_key": 1}
    assert incremental["events_rejected"] == 1 and incremental["operations"]["rename"] == 1
    assert files_sqlite == files_postgresql
    assert set(files_sqlite) == {f"p/{n:02d}.txt" for n in range(40)} | {"docs/c.txt", "new.txt"}
