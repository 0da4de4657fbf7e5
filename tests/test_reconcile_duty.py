"""Drift repaired with no one asking: the daemon's reconcile every RECONCILE_INTERVAL seconds,
its delete guard (held, reported, not applied), and the ``check`` command."""

from __future__ import annotations

import json

import pytest
import requests

from devtools.local_servers import free_port
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_mirrors, stop, synced
from tests.helpers.waiting import wait_for


def test_reconcile_interval_is_validated() -> None:
    assert SyncConfig.from_env({}, env_file=None).reconcile_interval == 86400
    assert SyncConfig.from_env({"RECONCILE_INTERVAL": "0"}, env_file=None).reconcile_interval == 0
    with pytest.raises(ConfigError, match="RECONCILE_INTERVAL"):
        SyncConfig.from_env({"RECONCILE_INTERVAL": "-1"}, env_file=None)


def test_the_daemon_repairs_drift_and_holds_deletes_over_the_guard(cli: Cli, bucket: Bucket, api: Api) -> None:
    # given ten synced files, then changes no event reports: one upload, six deletes
    synced(cli, bucket, {f"f{n}.txt": f"{n}".encode() for n in range(10)})
    bucket.put("unreported.txt", b"new")
    for n in range(6):
        bucket.client.delete_object(Bucket=bucket.name, Key=f"f{n}.txt")
    port = free_port()
    # when the daemon runs with a reconcile due every second
    daemon = cli.start("daemon", SYNC_INTERVAL="1", RECONCILE_INTERVAL="1", METRICS_PORT=str(port))
    try:
        wait_for(lambda: "unreported.txt" in api.files(), timeout=60)
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
                   .json().get("held_deletes") is not None, timeout=30)
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
    finally:
        stop(daemon)
    # then the upload is repaired, the deletes (over the guard of 1) are held, not applied
    files = api.files()
    assert {f"f{n}.txt" for n in range(10)} <= set(files)
    held = health.json()["held_deletes"]
    assert (held["count"], held["limit"]) == (6, 1) and sorted(held["paths"]) == [f"f{n}.txt" for n in range(6)]
    assert health.status_code == 200  # the service works; the held deletes wait for a person
    status = json.loads(cli.run("status", "--json").stdout)
    assert status["reconcile"]["held_deletes"]["count"] == 6
    assert "HELD 6 deletes" in cli.run("status").stdout
    # and the operator's reconcile with a raised limit applies them and clears the mark
    assert cli.run("reconcile", "--max-delete", "6").returncode == 0
    assert_mirrors(api, bucket)
    assert json.loads(cli.run("status", "--json").stdout)["reconcile"]["held_deletes"] is None


def test_check_compares_the_bucket_the_records_and_the_file_manager(cli: Cli, bucket: Bucket, api: Api) -> None:
    # given a synced bucket
    synced(cli, bucket, {"a.txt": b"a", "b.txt": b"b"})
    agreed = cli.run("check")
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert "consistent" in agreed.stdout
    # when an object arrives without an event and the file manager loses a file
    bucket.put("c.txt", b"c")
    api.delete("b.txt")
    found = cli.run("check", "--json")
    # then check names both, and exits 1
    assert found.returncode == 1
    result = json.loads(found.stdout)
    assert result["counts"] == {"not_recorded": 1, "missing_in_file_manager": 1}
    assert [(d["kind"], d["path"]) for d in result["differences"]] == [
        ("not_recorded", "c.txt"), ("missing_in_file_manager", "b.txt")]
    text = cli.run("check").stdout
    assert "not_recorded" in text and "2 differences" in text
