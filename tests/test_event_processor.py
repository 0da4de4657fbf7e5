"""Replay against a real S3 server and the state database: ids, sequencers, positions and crashes."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from sync_service.clients.file_spool import FileSpoolSource, parse_position
from sync_service.clients.storage.s3 import S3Store as S3Manager
from sync_service.errors import DatabaseError
from sync_service.sources.event_processor import EventProcessor
from sync_service.store.database_manager import DatabaseManager
from tests.helpers.harness import Bucket
from tests.helpers.sync import write_spool


def processor(tmp_path: Path, bucket: Bucket, db: DatabaseManager) -> tuple[EventProcessor, FileSpoolSource]:
    source = FileSpoolSource(tmp_path / "events")
    return EventProcessor(db, S3Manager(bucket.client, bucket.name), source,
                          dead_letters_dir=tmp_path / "dead", permissions_key="permissions",
                          default_permissions={"visibility": "private"}, bucket=bucket.name), source


def test_commit_without_acknowledge_does_not_apply_twice(tmp_path: Path, bucket: Bucket,
        state_db: DatabaseManager) -> None:
    bucket.put("a.txt", b"1", {"read": ["x"]})
    db = state_db
    replayer, source = processor(tmp_path, bucket, db)
    spool = write_spool(source.folder, "001.jsonl", [
        {"type": "create", "path": "a.txt"},
        {"type": "rename", "path": "a.txt", "new_path": "b.txt"},
    ])

    first = replayer.replay(acknowledge=False)  # as if killed after the commit, before the move
    second = replayer.replay()

    assert (first.applied, second.applied) == (2, 0)
    assert [r.path for r in db.iter_records()] == ["b.txt"]
    assert db.get_record("b.txt").permissions == '{"read":["x"]}'  # type: ignore[union-attr]
    assert not spool.exists() and [p.name.split(".")[0] for p in source.processed.iterdir()] == ["001"]
    assert parse_position(db.get_setting("event_position")).lines == 2


def test_a_crash_before_the_commit_applies_everything_once_later(tmp_path: Path, bucket: Bucket,
        state_db: DatabaseManager) -> None:
    bucket.put("c.txt", b"c")
    db = state_db
    replayer, source = processor(tmp_path, bucket, db)
    write_spool(source.folder, "001.jsonl", [{"type": "create", "path": "c.txt"},
                                             {"type": "delete", "path": "never-there.txt"}])
    original = replayer._apply_event
    calls = []

    def crash_on_second(*args: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise DatabaseError("disk vanished")  # forced: a crash mid-transaction
        original(*args)  # type: ignore[arg-type]

    with mock.patch.object(replayer, "_apply_event", side_effect=crash_on_second), \
            pytest.raises(DatabaseError):
        replayer.replay()
    assert db.get_record_count() == 0 and db.get_setting("event_position") is None

    result = replayer.replay()
    assert result.applied == 2
    assert db.get_record("c.txt") is not None


def test_older_sequencers_and_repeated_ids_are_skipped(tmp_path: Path, bucket: Bucket,
        state_db: DatabaseManager) -> None:
    bucket.put("k.txt", b"k")
    db = state_db
    replayer, source = processor(tmp_path, bucket, db)

    def note(name: str, sequencer: str) -> dict[str, object]:
        return {"Records": [{"eventName": name, "s3": {"bucket": {"name": bucket.name},
                                                       "object": {"key": "k.txt", "sequencer": sequencer}}}]}

    write_spool(source.folder, "001.jsonl", [
        note("ObjectCreated:Put", "0B"),
        note("ObjectRemoved:Delete", "0A"),  # older than the create: arrived late, skipped
        {"event_id": "same", "type": "change_permission", "path": "k.txt", "permissions": {"a": 1}},
        {"event_id": "same", "type": "change_permission", "path": "k.txt", "permissions": {"b": 2}},
    ])
    result = replayer.replay()
    assert (result.applied, result.stale, result.duplicates) == (2, 1, 1)
    assert db.get_record("k.txt").permissions == '{"a":1}'  # type: ignore[union-attr]


def test_create_of_an_object_gone_from_s3_changes_nothing(tmp_path: Path, bucket: Bucket,
        state_db: DatabaseManager) -> None:
    db = state_db
    replayer, source = processor(tmp_path, bucket, db)
    write_spool(source.folder, "001.jsonl", [{"type": "create", "path": "ghost.txt"}])
    assert replayer.replay().applied == 1
    assert db.get_record_count() == 0


def test_creates_of_recorded_objects_are_checked_by_listing_not_by_head(tmp_path: Path, bucket: Bucket) -> None:
    from devtools.local_servers import ACCESS_KEY, SECRET_KEY
    from sync_service.clients.s3_manager import make_client
    from sync_service.models.data_models import SyncedFile
    from tests.helpers.fault_proxy import DenyingProxy

    for n in range(12):
        bucket.put(f"docs/{n:02d}.txt", f"doc {n}".encode(), {"read": ["team"]})
    bucket.put("docs/sub/deep.txt", b"deep")  # another folder level: not read by docs/'s listing
    db = DatabaseManager(tmp_path / "sync.db")
    manager = S3Manager(bucket.client, bucket.name)
    db.save_synced([SyncedFile(o.path, o.size, o.etag, o.last_modified, '{"read":["team"]}')
                    for page in manager.iter_pages() for o in page])
    bucket.put("docs/03.txt", b"changed content", {"read": ["team"]})  # changed since recorded
    bucket.client.delete_object(Bucket=bucket.name, Key="docs/05.txt")  # gone since recorded
    before = {r.path: r for r in db.iter_records()}

    with DenyingProxy(bucket.endpoint, set()) as proxy:
        client = make_client(endpoint_url=proxy.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        source = FileSpoolSource(tmp_path / "events")
        replayer = EventProcessor(db, S3Manager(client, bucket.name), source,
                                  dead_letters_dir=tmp_path / "dead", permissions_key="permissions",
                                  default_permissions={"visibility": "private"}, bucket=bucket.name)
        write_spool(source.folder, "001.jsonl", [
            *({"type": "create", "path": f"docs/{n:02d}.txt"} for n in range(12)),
            # Deleted and created again in the same batch: the listing's answer is stale for it.
            {"type": "delete", "path": "docs/07.txt"},
            {"event_id": "again", "type": "create", "path": "docs/07.txt"},
            {"type": "create", "path": "docs/09.txt", "permissions": {"read": ["boss"]}},
        ])
        result = replayer.replay()

    heads = sorted(path for method, path in proxy.seen if method == "HEAD")
    lists = [path for method, path in proxy.seen if method == "GET" and path.endswith(bucket.name)]
    assert result.applied == 15 and result.rejected == 0
    assert heads == [f"/{bucket.name}/docs/03.txt", f"/{bucket.name}/docs/07.txt"]
    assert len(lists) == 1  # one listing of docs/ for twelve creates
    after = {r.path: r for r in db.iter_records()}
    assert after["docs/03.txt"].etag != before["docs/03.txt"].etag
    assert "docs/05.txt" in after  # a create of a vanished object changes nothing
    assert after["docs/07.txt"].etag == before["docs/07.txt"].etag
    assert after["docs/09.txt"].permissions == '{"read":["boss"]}'
    unchanged = [f"docs/{n:02d}.txt" for n in (0, 1, 2, 4, 6, 8, 10, 11)]
    assert all(after[p] == before[p] for p in unchanged)
    dirty = {r.path for r in db.records.rows_of(db.records.dirty_ids())}
    assert dirty == {"docs/03.txt", "docs/07.txt", "docs/09.txt"}
