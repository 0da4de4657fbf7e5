"""Renames told by content: pairing as a pure function, and a folder renamed by copy + delete
reaching the file manager as moves, from S3 notifications alone (no HEAD, no upload)."""

from __future__ import annotations

import json
from typing import Any

from sync_service.models.data_models import FileRecord
from sync_service.planning.renames import pair_renames
from tests.helpers.fault_proxy import DenyingProxy
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_mirrors, ops_of, report_of, spool, synced


def rec(record_id: int, path: str, etag: str = "e1", size: int = 5) -> FileRecord:
    return FileRecord(record_id, path, size, etag, "2026-11-25T00:00:00Z", "{}", 1)


def test_pairs_by_size_and_etag_with_the_same_name_first() -> None:
    deleted = [rec(1, "old/a.txt"), rec(2, "old/b.txt"), rec(3, "old/c.txt", etag="e3")]
    created = [rec(10, "new/b.txt"), rec(11, "new/z.txt"), rec(12, "new/c.txt", etag="other")]
    pairs = pair_renames(created, deleted)
    assert [(c.id, d.id) for c, d in pairs] == [(10, 2), (11, 1)]


def test_unknown_content_and_unequal_sizes_never_pair() -> None:
    assert pair_renames([rec(10, "x", etag="")], [rec(1, "y", etag="")]) == []
    assert pair_renames([rec(10, "x", size=6)], [rec(1, "y", size=5)]) == []


def test_pairing_is_deterministic_whatever_the_input_order() -> None:
    deleted = [rec(n, f"old/{n}.bin") for n in range(1, 6)]
    created = [rec(100 + n, f"new/{n}.bin") for n in range(1, 6)]
    first = pair_renames(created, deleted)
    again = pair_renames(list(reversed(created)), list(reversed(deleted)))
    assert [(c.id, d.id) for c, d in first] == [(c.id, d.id) for c, d in again]
    assert all(c.path.rsplit("/", 1)[1] == d.path.rsplit("/", 1)[1] for c, d in first)


def notification(bucket: Bucket, name: str, key: str, size: int = 0, etag: str = "") -> dict[str, Any]:
    described: dict[str, Any] = {"key": key.replace(" ", "+"), "sequencer": "1"}
    if name.startswith("ObjectCreated"):
        described.update(size=size, eTag=etag)
    return {"Records": [{"eventName": f"s3:{name}", "eventTime": "2026-11-25T10:00:00.000Z",
                         "s3": {"bucket": {"name": bucket.name}, "object": described}}]}


def test_a_folder_renamed_by_copy_and_delete_arrives_as_moves_without_uploads(
        cli: Cli, bucket: Bucket, api: Api) -> None:
    names = [f"photo {n}.jpg" for n in range(5)]
    synced(cli, bucket, {f"album/{n}": f"picture {n}".encode() for n in names})
    before = len(api.operations())
    messages = []
    for name in names:  # what MinIO publishes for a folder renamed in its console
        bucket.client.copy_object(Bucket=bucket.name, Key=f"album-2026/{name}",
                                  CopySource={"Bucket": bucket.name, "Key": f"album/{name}"})
        head = bucket.client.head_object(Bucket=bucket.name, Key=f"album-2026/{name}")
        bucket.client.delete_object(Bucket=bucket.name, Key=f"album/{name}")
        messages.append(notification(bucket, "ObjectCreated:Copy", f"album-2026/{name}",
                                     head["ContentLength"], head["ETag"].strip('"')))
        messages.append(notification(bucket, "ObjectRemoved:Delete", f"album/{name}"))
    spool(cli, "001", *(json.dumps(m) for m in messages))

    with DenyingProxy(bucket.endpoint, set()) as proxy:
        result = cli.run("incremental-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint)

    assert result.returncode == 0, result.stderr[-3000:]
    assert report_of(result)["operations"]["move"] == 5
    file_ops = [op for op in ops_of(api, before) if op[0] != "syncResults"]
    assert sorted(file_ops) == sorted(("moveFile", f"album/{n}") for n in names)
    assert not [s for s in proxy.seen if s[0] in ("HEAD", "GET") and "album" in s[1]]
    assert_mirrors(api, bucket)


def test_notified_creates_of_objects_already_synced_need_no_request(cli: Cli, bucket: Bucket, api: Api) -> None:
    synced(cli, bucket, {"a.txt": b"alpha", "b.txt": b"beta"})
    messages = []
    for key in ("a.txt", "b.txt"):
        head = bucket.client.head_object(Bucket=bucket.name, Key=key)
        messages.append(json.dumps(notification(bucket, "ObjectCreated:Put", key,
                                                head["ContentLength"], head["ETag"].strip('"'))))
    spool(cli, "001", *messages)
    before = len(api.operations())

    with DenyingProxy(bucket.endpoint, set()) as proxy:
        result = cli.run("incremental-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint)

    assert result.returncode == 0, result.stderr[-3000:]
    assert report_of(result)["events_applied"] == 2 and report_of(result)["succeeded"] == 0
    assert not [s for s in proxy.seen if s[0] in ("HEAD", "GET") and s[1].endswith(".txt")]
    assert [op for op in ops_of(api, before) if op[0] != "syncResults"] == []
