"""The initial listing in key ranges (SPEC §9, PostgreSQL): how a page's folders become ranges,
what the ranges table promises (one lister a range, positions stored with the page, the last
range completes the initial sync), and workers sharing a listing, one of them killed with -9
half-way through a range, which another continues after the position it stored."""

from __future__ import annotations

import signal
import socket
from collections import Counter

import pytest

from sync_service.services.database_manager import DatabaseManager
from sync_service.store.listing_ranges import MAX_DEPTH, RANGES_PER_PAGE, ListingRange, LostRange, split_folders
from tests.conftest import Api, Bucket, Cli
from tests.fault_proxy import SlowListingProxy
from tests.test_initial_sync import assert_api_matches_bucket, wait_until


def folder_range(scope: str, depth: int) -> ListingRange:
    return ListingRange(1, "run-1", scope, None, depth, "")


def test_a_pages_folders_become_at_most_eight_ranges_of_neighbours() -> None:
    # a few folders: each a folder range of its own, one level deeper
    assert split_folders(folder_range("p/", 0), ["p/a/", "p/b/", "p/c/"]) == [
        ("p/a/", None, 1), ("p/b/", None, 1), ("p/c/", None, 1)]
    # ten: eight ranges, the first two of two neighbouring folders each (listed whole)
    folders = [f"p/{n}/" for n in range(10)]
    ranges = split_folders(folder_range("p/", 0), folders)
    assert len(ranges) == RANGES_PER_PAGE
    assert ranges[:3] == [("p/", ("p/0/", "p/1/"), 1), ("p/", ("p/2/", "p/3/"), 1), ("p/4/", None, 1)]
    assert [f for scope, group, _ in ranges for f in (group or (scope,))] == folders  # all, in order
    # at the deepest delimited level a folder alone is listed whole too
    assert split_folders(folder_range("p/q/", MAX_DEPTH - 1), ["p/q/r/"]) == [("p/q/", ("p/q/r/",), MAX_DEPTH)]
    assert split_folders(folder_range("p/", 0), []) == []


def test_one_lister_a_range_positions_stored_and_the_last_range_completes(postgres_url: str) -> None:
    db = DatabaseManager(postgres_url)
    ranges = db.ranges
    try:
        # given a listing started for a run: one folder range, the prefix's own keys
        assert ranges.start("bucket", "team/", "run-1") == 1
        root = ranges.claim("A", 60)
        assert root is not None and (root.scope, root.delimited, root.after) == ("team/", True, "")
        assert ranges.claim("B", 60) is None  # held by A
        # when A stores a page that found folders, the position and the new ranges go together
        with db.transaction():
            ranges.advance(root, "A", 60, "team/y/", found=[("team/x/", None, 1), ("team/", ("team/y/",), 1)])
        assert ranges.counts() == {"listed": 0, "left": 3}
        # and a lister that lost its claim stores nothing: its whole page is rolled back
        with pytest.raises(LostRange), db.transaction():
            db.records.upsert("ghost.txt", 1, "e", "2026-11-26T00:00:00Z", "")
            ranges.advance(root, "B", 60, "team/z", found=[("team/z/", None, 1)])
        assert db.get_record("ghost.txt") is None and ranges.counts()["left"] == 3
        # a claim whose lease ran out is free again, with the position it stored
        assert ranges.release("A") == 1
        short = ranges.claim("C", 0.0)
        assert short is not None and short.id == root.id and short.after == "team/y/"
        again = ranges.claim("D", 60)
        assert again is not None and again.id == root.id
        # then the range that finishes last marks the initial sync completed
        with db.transaction():
            ranges.advance(again, "D", 60, "team/z", done=True)
        for name in ("E", "F"):
            claimed = ranges.claim(name, 60)
            assert claimed is not None and claimed.run_id == "run-1"
            assert db.get_setting("initial_sync_completed") is None
            with db.transaction():
                ranges.advance(claimed, name, 60, "", done=True)
        assert db.get_setting("initial_sync_completed") == "run-1"
        assert ranges.counts() == {"listed": 3, "left": 0}
        # and the next listing starts over, as does one of another prefix
        assert ranges.start("bucket", "team/", "run-2") == 1
        assert ranges.start("bucket", "other/", "run-3") == 1
        assert [r[0] for r in db.database.query("SELECT scope FROM listing_ranges")] == ["other/"]
        # while an unfinished listing of the same prefix is taken over by the next run
        assert ranges.start("bucket", "other/", "run-4") == 1
        taken = ranges.claim("G", 60)
        assert taken is not None and taken.run_id == "run-4"
    finally:
        db.close()


LEASE_S = 3


def test_workers_share_the_listing_and_a_killed_listers_range_is_continued_after_its_position(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    # given a bucket of folders whose listing comes 4 keys a page, each page after 0.2 s
    keys = ([f"top-{n}.txt" for n in range(3)] + [f"f{f}/{n:02d}.txt" for f in range(5) for n in range(24)]
            + [f"deep/er/{n}.txt" for n in range(8)])
    for key in keys:
        bucket.put(key, key.encode())
    with SlowListingProxy(bucket.endpoint, max_keys=4, delay_s=0.2) as proxy:
        cli.env.update(DATABASE_URL=postgres_url, CUSTOMER_S3_ENDPOINT=proxy.endpoint)
        planned = cli.run("initial-sync", "--plan-only")
        assert planned.returncode == 0, planned.stderr
        # when three workers list and apply it, and one is killed with -9 half-way through a range
        workers = [cli.start("worker", "--until-idle", WORKER_LEASE_S=str(LEASE_S), SYNC_WORKERS="2")
                   for _ in range(3)]
        victim = f"{socket.gethostname()}:{workers[0].pid}"

        def half_listed() -> list[tuple[int, str]]:
            return [(row[0], row[1]) for row in cli.query(
                "SELECT id, after FROM listing_ranges WHERE claimed_by = ? AND done = 0 AND after != ''",
                (victim,))]

        wait_until(lambda: bool(half_listed()), timeout=60, interval=0.02)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        (range_id, position), = half_listed()
        for worker in workers[1:]:
            worker.wait(timeout=120)
    # then the others finished the listing and every object reached the file manager once
    logs = "".join((cli.workdir / f"process-{n}.log").read_text() for n in (1, 2))
    for worker in workers[1:]:
        assert worker.returncode == 0, logs[-3000:]
    saves = Counter(op["path"] for op in api.operations() if op["op"] == "saveToDisk")
    assert sorted(saves) == sorted(keys) and set(saves.values()) == {1}, saves.most_common(3)
    assert_api_matches_bucket(api, bucket, {})
    assert cli.query("SELECT value FROM settings WHERE key = 'initial_sync_completed'") != []
    # the killed lister's range was taken over and continued after the position it had stored
    (done, claimed_by), = cli.query("SELECT done, claimed_by FROM listing_ranges WHERE id = ?", (range_id,))
    assert done == 1 and claimed_by != victim
    assert f"listing range {range_id}, " in logs and f"continuing after {position!r}" in logs
    assert any(q.get("start-after") == position for q in proxy.listings)
    # and the listing was shared out: the folders were ranges of their own
    scopes = {row[0] for row in cli.query("SELECT scope FROM listing_ranges")}
    assert {"", "f0/", "f4/", "deep/", "deep/er/"} <= scopes, scopes
    listers = {row[0] for row in cli.query("SELECT DISTINCT claimed_by FROM listing_ranges")}
    assert len(listers - {victim}) == 2
