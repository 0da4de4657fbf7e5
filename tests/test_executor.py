"""The executor's error classes (SPEC §3), each forced on real servers: the mock file manager on
a port (faults through ``/admin/faults`` or a state it really has), moto's S3 over HTTP, and a
real proxy that denies one object."""

from __future__ import annotations

import random

import requests

from tests.helpers.fault_proxy import DenyingProxy
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import DEFAULT, assert_api_matches_bucket, rename_in_bucket, report_of, sha, spool, synced


def test_permissions_of_a_file_the_file_manager_lost_upload_it_again(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"docs/a.txt": b"alpha", "b.txt": b"beta"})
    api.delete("docs/a.txt")  # lost on the file manager's side
    spool(cli, "001", {"type": "change_permission", "path": "docs/a.txt",
                       "permissions": {"read": ["alice"]}})

    result = cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr[-3000:]
    files = api.files()
    assert files["docs/a.txt"]["sha256"] == sha(b"alpha")
    assert files["docs/a.txt"]["permissions"] == {"read": ["alice"]}
    assert report_of(result)["operations"]["update_permissions"] == 1
    permission_keys = [op["idempotency_key"] for op in api.operations()
                       if op["op"] == "updatePermissions" and op["path"] == "docs/a.txt"]
    assert len(permission_keys) == len(set(permission_keys))  # the 404's key is never sent again


def test_a_move_onto_a_taken_path_replaces_it_and_is_not_planned_again(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"a.txt": b"the real content"})
    requests.post(f"{api.url}/saveToDisk", params={"path": "taken.txt"}, data=b"stale",
                  timeout=10).raise_for_status()  # a file the service does not know about
    rename_in_bucket(bucket, "a.txt", "taken.txt")
    spool(cli, "001", {"type": "rename", "path": "a.txt", "new_path": "taken.txt"})

    result = cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr[-3000:]
    report = report_of(result)
    assert report["operations"]["update"] == 1 and report["operations"]["rename"] == 0
    files = api.files()
    assert set(files) == {"taken.txt"}
    assert files["taken.txt"]["sha256"] == sha(b"the real content")
    assert files["taken.txt"]["permissions"] == DEFAULT
    again = cli.run("incremental-sync")
    assert again.returncode == 0 and report_of(again)["succeeded"] == 0


def _seed_failing_first_draw_only() -> int:
    """A fault seed whose first selection draw hits (< 0.5) and whose second misses."""
    for seed in range(10_000):
        draws = random.Random(seed)
        if draws.random() < 0.5 <= draws.random():
            return seed
    raise AssertionError("no such seed")


def test_an_integrity_mismatch_is_retried_under_a_new_key(cli: Cli, bucket: Bucket, api: Api) -> None:
    bucket.put("a.txt", b"checked bytes")
    api.faults(fail_rate=0.5, match="a.txt", corrupt=True, seed=_seed_failing_first_draw_only())

    result = cli.run("initial-sync")

    assert result.returncode == 0, result.stderr[-3000:]
    saves = [op for op in api.operations() if op["op"] == "saveToDisk"]
    keys = [op["idempotency_key"] for op in saves]
    assert len(saves) == 2 and keys[1] == f"{keys[0]}:i1", saves
    api.faults()
    assert api.files()["a.txt"]["sha256"] == sha(b"checked bytes")


def test_an_object_denied_to_the_service_fails_alone_and_is_retried_later(cli: Cli, bucket: Bucket, api: Api) -> None:
    for key in ("a.txt", "secret.txt", "z.txt"):
        bucket.put(key, key.encode())

    with DenyingProxy(bucket.endpoint, {"secret.txt"}) as proxy:
        first = cli.run("initial-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint)

    assert first.returncode == 1
    report = report_of(first)
    assert report["succeeded"] == 2 and report["failed"] == 1
    assert [f["path"] for f in report["failures"]] == ["secret.txt"]
    assert "403" in report["failures"][0]["error"] or "AccessDenied" in report["failures"][0]["error"]
    assert set(api.files()) == {"a.txt", "z.txt"}
    assert proxy.denials == 1  # no retry loop around botocore's own

    second = cli.run("incremental-sync")  # any later run retries what failed
    assert second.returncode == 0, second.stderr[-3000:]
    assert report_of(second)["operations"]["create"] == 1
    assert_api_matches_bucket(api, bucket, {})


def test_a_denied_head_fails_its_event_and_the_rest_of_the_batch_applies(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"old.txt": b"old"})
    bucket.put("new.txt", b"new")
    bucket.put("secret.txt", b"secret")
    spool(cli, "001", {"type": "create", "path": "new.txt"}, {"type": "create", "path": "secret.txt"},
          {"type": "delete", "path": "old.txt"})
    bucket.client.delete_object(Bucket=bucket.name, Key="old.txt")

    with DenyingProxy(bucket.endpoint, {"secret.txt"}) as proxy:
        first = cli.run("incremental-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint)

    assert first.returncode == 1
    report = report_of(first)
    assert report["events_applied"] == 3 and report["events_rejected"] == 0
    assert [f["path"] for f in report["failures"]] == ["secret.txt"]
    assert set(api.files()) == {"new.txt"}
    assert not (cli.workdir / "data" / "dead-letters").exists()

    second = cli.run("incremental-sync")
    assert second.returncode == 0, second.stderr[-3000:]
    assert_api_matches_bucket(api, bucket, {})
