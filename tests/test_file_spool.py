"""The spool folder (SPEC §5): a producer that reuses a file name loses nothing, and a processed
file never overwrites another. Real files, a real S3 server, the CLI as a process."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sync_service.clients.file_spool import FileSpoolSource, parse_position
from sync_service.clients.storage.s3 import S3Store as S3Manager
from sync_service.sources.event_processor import EventProcessor
from sync_service.store.database_manager import DatabaseManager
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_mirrors


def produce(folder: Path, name: str, lines: list[str]) -> Path:
    """Write a spool file as producers must: under a temporary name, then renamed into place."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name}.partial"
    partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(partial, folder / name)
    return folder / name


def creates(*paths: str) -> list[str]:
    return [json.dumps({"type": "create", "path": p}) for p in paths]


def test_the_same_name_written_three_times_with_runs_between(cli: Cli, bucket: Bucket, api: Api) -> None:
    # given three batches, each spooled as events.jsonl and followed by an incremental sync
    folder = cli.workdir / "data" / "events"
    assert cli.run("initial-sync").returncode == 0
    batches = [[f"one/{n}.txt" for n in range(5)], [f"two/{n}.txt" for n in range(3)],
               [f"three/{n}.txt" for n in range(6)]]
    for paths in batches:
        for path in paths:
            bucket.put(path, path.encode())
        produce(folder, "events.jsonl", creates(*paths))
        # when the sync runs
        result = cli.run("incremental-sync")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["events_applied"] == len(paths)
    # then all 14 files reached the file manager, and each file has its own name in processed/
    assert len(api.files()) == 14
    assert_mirrors(api, bucket)
    processed = sorted(p.name for p in (folder / "processed").iterdir())
    assert len(processed) == 3 and all(n.startswith("events.") for n in processed), processed


def replayer(tmp_path: Path, bucket: Bucket) -> tuple[EventProcessor, DatabaseManager, FileSpoolSource]:
    db = DatabaseManager(tmp_path / "sync.db")
    source = FileSpoolSource(tmp_path / "events")
    return EventProcessor(db, S3Manager(bucket.client, bucket.name), source,
                          dead_letters_dir=tmp_path / "dead", permissions_key="permissions",
                          default_permissions={"visibility": "private"}, bucket=bucket.name), db, source


def test_the_same_name_written_again_before_a_run_finished(tmp_path: Path, bucket: Bucket) -> None:
    # given events.jsonl applied and committed, but the run killed before it moved the file
    for n in range(9):
        bucket.put(f"f{n}.txt", b"x")
    processor, db, source = replayer(tmp_path, bucket)
    produce(source.folder, "events.jsonl", creates("f0.txt", "f1.txt", "f2.txt"))
    assert processor.replay(acknowledge=False).applied == 3
    # when the producer renames the next events.jsonl into place (as many lines), then a third
    produce(source.folder, "events.jsonl", creates("f3.txt", "f4.txt", "f5.txt"))
    second = processor.replay()
    produce(source.folder, "events.jsonl", creates("f6.txt", "f7.txt", "f8.txt"))
    third = processor.replay()
    # then each new file is read from its first line; nothing is skipped for its name
    assert (second.applied, third.applied) == (3, 3)
    assert sorted(r.path for r in db.iter_records()) == [f"f{n}.txt" for n in range(9)]
    assert len(list(source.processed.iterdir())) == 2


def test_a_file_replaced_while_it_was_read_is_not_moved_unread(tmp_path: Path) -> None:
    # given a batch read from events.jsonl
    source = FileSpoolSource(tmp_path / "events")
    produce(source.folder, "events.jsonl", creates("a.txt"))
    (batch,) = list(source.batches(None, 500))
    # when the producer replaces the file before the batch is acknowledged
    produce(source.folder, "events.jsonl", creates("b.txt", "c.txt"))
    source.acknowledge(batch)
    # then the new file stays, and is read whole after the old file's final position
    assert not source.processed.exists()
    (again,) = list(source.batches(batch.position, 500))
    assert [json.loads(m.body)["path"] for m in again.messages] == ["b.txt", "c.txt"]


def test_identical_content_twice_is_kept_twice_and_applied_once(tmp_path: Path, bucket: Bucket) -> None:
    bucket.put("same.txt", b"s")
    processor, _, source = replayer(tmp_path, bucket)
    produce(source.folder, "events.jsonl", creates("same.txt"))
    first = processor.replay()
    produce(source.folder, "events.jsonl", creates("same.txt"))
    second = processor.replay()
    # (the same name and content as the position's: its lines count as applied)
    assert (first.applied, second.applied) == (1, 0)
    assert sorted(p.name for p in source.processed.iterdir()) == [
        f"events.{parse_position(first.position).digest}.2.jsonl",
        f"events.{parse_position(first.position).digest}.jsonl"]


def test_a_position_stored_before_digests_still_counts(tmp_path: Path) -> None:
    # given the old position format name:lines (a database from before this version)
    source = FileSpoolSource(tmp_path / "events")
    produce(source.folder, "events.jsonl", creates("a.txt", "b.txt", "c.txt"))
    # when replay continues from it
    (batch,) = list(source.batches("events.jsonl:2", 500))
    # then the applied lines are skipped, and the new position names the content
    assert [json.loads(m.body)["path"] for m in batch.messages] == ["c.txt"]
    position = parse_position(batch.position)
    assert (position.name, position.lines, len(position.digest)) == ("events.jsonl", 3, 16)
    assert parse_position("odd@name.jsonl:4").name == "odd@name.jsonl"


def test_one_event_a_file_is_replayed_as_one_batch_and_a_crash_before_the_moves_applies_nothing_twice(
        tmp_path: Path, bucket: Bucket) -> None:
    # given 30 spool files of one event each (as the daemon's producers often write them)
    for n in range(30):
        bucket.put(f"one/{n}.txt", b"x")
    processor, db, source = replayer(tmp_path, bucket)
    for n in range(30):
        produce(source.folder, f"{n:03d}.jsonl", creates(f"one/{n}.txt"))
    # when replay commits them but the process dies before it moves the files
    first = processor.replay(acknowledge=False)
    # then one batch (one transaction) took all 30, and the position names the last file
    assert (first.batches, first.applied) == (1, 30)
    assert parse_position(first.position).name == "029.jsonl"
    # and the run after the crash applies nothing again, and moves every file away
    again = processor.replay()
    assert (again.applied, again.duplicates) == (0, 29)
    assert sorted(r.path for r in db.iter_records()) == sorted(f"one/{n}.txt" for n in range(30))
    assert source.pending_files() == [] and len(list(source.processed.iterdir())) == 30
    # and batches still stop at the size asked for, across files
    for n in range(5):
        produce(source.folder, f"1{n:02d}.jsonl", creates(f"one/{n}.txt", f"one/{n + 5}.txt"))
    sizes = [len(b.messages) for b in source.batches(again.position, 4)]
    assert sizes == [4, 4, 2]
