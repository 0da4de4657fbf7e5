"""The initial listing in key ranges (SPEC §9, PostgreSQL): how a page's folders become ranges
and how a long range of keys without folders is split, what the ranges table promises (one
lister a range, positions stored with the page, the last range completes the initial sync),
and workers sharing a listing: one of them killed with -9 half-way through a range, which
another continues after the position it stored; a bucket without folders listed by several."""

from __future__ import annotations

import hashlib
import signal
import socket
import time
from collections import Counter

import pytest

from sync_service.store.database_manager import DatabaseManager
from sync_service.store.listing_ranges import (
    RANGES_PER_PAGE,
    ListingRange,
    ListingRangeStore,
    LostRange,
    NewRange,
    probe_points,
    split_folders,
    split_points,
    split_ranges,
)
from tests.helpers.fault_proxy import SlowListingProxy
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_api_matches_bucket, stop_when


def folder_range(scope: str, depth: int) -> ListingRange:
    return ListingRange(1, "run-1", scope, None, depth, "")


def test_a_pages_folders_become_at_most_eight_ranges_of_neighbours() -> None:
    # a few folders: each a folder range of its own, one level deeper
    assert split_folders(folder_range("p/", 0), ["p/a/", "p/b/", "p/c/"]) == [
        NewRange("p/a/", None, 1), NewRange("p/b/", None, 1), NewRange("p/c/", None, 1)]
    # ten: eight ranges, the first two of two neighbouring folders each (listed whole)
    folders = [f"p/{n}/" for n in range(10)]
    ranges = split_folders(folder_range("p/", 0), folders)
    assert len(ranges) == RANGES_PER_PAGE
    assert ranges[:3] == [NewRange("p/", ("p/0/", "p/1/"), 1), NewRange("p/", ("p/2/", "p/3/"), 1),
                          NewRange("p/4/", None, 1)]
    assert [f for r in ranges for f in (r.folders or (r.scope,))] == folders  # all, in order
    assert split_folders(folder_range("p/", 0), []) == []


def test_a_long_range_is_split_at_entries_found_between_its_position_and_its_end() -> None:
    # an unbounded range of hex keys listed up to '0a7': probed at the first character, after '0'
    root = folder_range("", 0)
    points = probe_points(root, "0a7")
    assert points[0] == "1" and "f" in points and "0" not in points
    # the entries found become at most seven boundaries, spread evenly, and eight ranges
    found = ["1000", "2000", "3000", "4000", "5000", "6000", "7000", "8000", "9000", "a000",
             "b000", "c000", "d000", "e000", "f000", "0a5", "0a7"]  # the last two are behind
    bounds = split_points(root, "0a7", found)
    assert bounds == ["2000", "4000", "6000", "8000", "a000", "c000", "e000"]
    assert split_ranges(root, bounds) == [
        NewRange("", None, 0, after="2000", until="4000"), NewRange("", None, 0, after="4000", until="6000"),
        NewRange("", None, 0, after="6000", until="8000"), NewRange("", None, 0, after="8000", until="a000"),
        NewRange("", None, 0, after="a000", until="c000"), NewRange("", None, 0, after="c000", until="e000"),
        NewRange("", None, 0, after="e000", until=None)]
    # a bounded range probes where its position and its end differ, up to the end
    bounded = ListingRange(2, "run-1", "p/", None, 1, "p/2f", until="p/4c")
    assert probe_points(bounded, "p/2f") == ["p/3", "p/4"]
    assert split_points(bounded, "p/2f", ["p/3a", "p/4c", "p/4d"]) == ["p/3a"]  # the end is not a bound
    # keys sharing a longer beginning: deeper levels, below the position's own characters
    narrow = ListingRange(3, "run-1", "", None, 0, "img_0041", until="img_1000")
    assert probe_points(narrow, "img_0041") == ["img_1"]
    assert probe_points(narrow, "img_0041", level=1)[:2] == ["img_01", "img_02"]
    assert probe_points(narrow, "img_0041", level=9) == []
    # names past ASCII are probed at points spread over their scripts, in code-point order
    assert probe_points(root, "0a7")[-2:] == ["\ud400", "\U0001f300"]
    assert probe_points(folder_range("", 0), "写真_0001")[:3] == ["\u5800", "\u6200", "\u6c00"]
    # a subtree range listing its last folder probes that folder, and its rest goes to ranges
    # of that one folder
    subtree = ListingRange(4, "run-1", "p/", ("p/a/", "p/big/"), 1, "p/big/3/0041")
    assert subtree.prefix_of("p/big/3/0041") == "p/big/"
    assert probe_points(subtree, "p/big/3/0041")[:2] == ["p/big/4", "p/big/5"]
    assert probe_points(subtree, "p/big/3/0041", level=2)[:2] == ["p/big/3/1", "p/big/3/2"]
    bounds = split_points(subtree, "p/big/3/0041", ["p/big/5/0", "p/big/8/1", "p/big/3/0040"])
    assert bounds == ["p/big/5/0", "p/big/8/1"]
    assert split_ranges(subtree, bounds) == [
        NewRange("p/", ("p/big/",), 1, after="p/big/5/0", until="p/big/8/1"),
        NewRange("p/", ("p/big/",), 1, after="p/big/8/1", until=None)]


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
            ranges.advance(root, "A", 60, "team/y/",
                           found=[NewRange("team/x/", None, 1), NewRange("team/", ("team/y/",), 1)])
        assert ranges.counts() == {"listed": 0, "left": 3}
        # and a lister that lost its claim stores nothing: its whole page is rolled back
        with pytest.raises(LostRange), db.transaction():
            db.records.upsert("ghost.txt", 1, "e", "2026-11-26T00:00:00Z", "")
            ranges.advance(root, "B", 60, "team/z", found=[NewRange("team/z/", None, 1)])
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
        # a long range shares out its rest: a folder range ends at the first boundary, new
        # ranges take the rest; a subtree range hands on the folders it has not begun
        assert ranges.start("bucket", "flat/", "run-5") == 1
        flat = ranges.claim("H", 60)
        assert flat is not None
        narrowed = ranges.split(flat, "H", ["flat/3", "flat/7"])
        assert narrowed.until == "flat/3"
        assert [(r.id == flat.id, r.after, r.until) for r in _claim_all(ranges, "I")] == [
            (False, "flat/3", "flat/7"), (False, "flat/7", None)]
        with db.transaction():
            ranges.advance(narrowed, "H", 60, "", found=[NewRange("flat/", ("flat/a/", "flat/b/", "flat/c/"), 1)])
        group = ranges.claim("J", 60)
        assert group is not None and group.folders == ("flat/a/", "flat/b/", "flat/c/")
        kept = ranges.hand_off(group, "J", 1)
        assert kept.folders == ("flat/a/",)
        handed = _claim_all(ranges, "K")
        assert [(r.scope, r.folders, r.depth) for r in handed] == [("flat/b/", None, 1), ("flat/c/", None, 1)]
        with pytest.raises(LostRange):
            ranges.hand_off(group, "someone else", 1)
        # what listers skipped is summed per run, whichever lister stored it
        assert ranges.skipped("run-1") == {}
        assert ranges.start("bucket", "skips/", "run-6") == 1
        first = ranges.claim("L", 60)
        assert first is not None
        with db.transaction():
            ranges.advance(first, "L", 60, "skips/m", skipped={"folder_marker": 2},
                           found=[NewRange("skips/z/", None, 1)])
        second = ranges.claim("M", 60)
        assert second is not None and second.scope == "skips/z/"
        with db.transaction():
            ranges.advance(second, "M", 60, "skips/z/1", skipped={"folder_marker": 1, "invalid_key": 4},
                           done=True)
            ranges.advance(first, "L", 60, "skips/n", skipped={"unchanged": 5}, done=True)
        assert ranges.skipped("run-6") == {"folder_marker": 3, "invalid_key": 4, "unchanged": 5}
        # and the next listing starts over, as does one of another prefix
        assert ranges.start("bucket", "team/", "run-2") == 1
        assert ranges.start("bucket", "other/", "run-3") == 1
        assert [r[0] for r in db.database.query("SELECT scope FROM listing_ranges")] == ["other/"]
        # while an unfinished listing of the same prefix is taken over by the next run, which
        # counts afresh what its ranges skip (the run that listed their first pages reported it)
        begun = ranges.claim("F2", 60)
        assert begun is not None
        with db.transaction():
            ranges.advance(begun, "F2", 60, "other/k", skipped={"folder_marker": 1})
        ranges.release("F2")
        assert ranges.skipped("run-3") == {"folder_marker": 1}
        assert ranges.start("bucket", "other/", "run-4") == 1
        taken = ranges.claim("G", 60)
        assert taken is not None and taken.run_id == "run-4" and taken.after == "other/k"
        assert ranges.skipped("run-4") == {} and ranges.skipped("run-3") == {}
    finally:
        db.close()


def _claim_all(ranges: ListingRangeStore, lister: str) -> list[ListingRange]:
    claimed: list[ListingRange] = []
    while (one := ranges.claim(lister, 60)) is not None:
        claimed.append(one)
    return claimed


@pytest.mark.scale
def test_workers_share_the_listing_and_a_killed_listers_range_is_continued_after_its_position(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    # given a bucket of folders whose listing comes 4 keys a page, each page after 0.2 s, and
    # a file manager answering in 30 ms
    keys = ([f"top-{n}.txt" for n in range(3)] + [f"f{f}/{n:02d}.txt" for f in range(5) for n in range(24)]
            + [f"deep/er/{n}.txt" for n in range(8)])
    for key in keys:
        bucket.put(key, key.encode())
    with SlowListingProxy(bucket.endpoint, max_keys=4, delay_s=0.2) as proxy:
        cli.env.update(DATABASE_URL=postgres_url, CUSTOMER_S3_ENDPOINT=proxy.endpoint)
        planned = cli.run("initial-sync", "--plan-only")
        assert planned.returncode == 0, planned.stderr
        api.faults(fail_rate=1.0, latency_ms=30, seed=3)
        # when three workers list and apply it (the default lease: 30 s, renewed while they
        # live), and one is killed with -9 half-way through a range, holding operations
        # one lister a worker (LISTERS=1): the killed worker's range is its only one
        workers = [cli.start("worker", "--until-idle", WORKER_BATCH="8", SYNC_WORKERS="2", LISTERS="1")
                   for _ in range(3)]
        victim = f"{socket.gethostname()}:{workers[0].pid}"

        def half_listed() -> list[tuple[int, str]]:
            return [(row[0], row[1]) for row in cli.query(
                "SELECT id, after FROM listing_ranges WHERE claimed_by = ? AND done = 0 AND after != ''",
                (victim,))]

        def claimed() -> list[int]:
            return [row[0] for row in cli.query(
                "SELECT id FROM operations WHERE claimed_by = ? AND status = 'pending'", (victim,))]

        stop_when(workers[0], lambda: half_listed() and claimed())
        (range_id, position), = half_listed()
        orphaned = claimed()
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        killed_at = time.monotonic()
        for worker in workers[1:]:
            worker.wait(timeout=120)
        finished_in = time.monotonic() - killed_at
        api.faults()
    # then the others finished the listing and every object reached the file manager once
    logs = "".join((cli.workdir / f"process-{n}.log").read_text() for n in (1, 2))
    for worker in workers[1:]:
        assert worker.returncode == 0, logs[-3000:]
    uploads = [op for op in api.operations() if op["op"] == "saveToDisk"]
    saves = Counter(op["path"] for op in uploads if not op["replay"])
    assert sorted(saves) == sorted(keys) and set(saves.values()) == {1}, saves.most_common(3)
    # sent again only what the killed worker held, under its key: answered as replays
    resent = {op["path"] for op in uploads if op["replay"]}
    assert len(resent) <= len(orphaned), resent
    assert_api_matches_bucket(api, bucket, {})
    assert cli.query("SELECT value FROM settings WHERE key = 'initial_sync_completed'") != []
    # the killed lister's range and operations were taken over and finished within the lease
    # and a look: not after a lease long enough for the slowest batch
    assert finished_in < 45, finished_in
    (done, claimed_by), = cli.query("SELECT done, claimed_by FROM listing_ranges WHERE id = ?", (range_id,))
    assert done == 1 and claimed_by != victim
    taken_over = cli.query("SELECT status, claimed_by FROM operations WHERE id IN "
                           f"({', '.join(map(str, orphaned))})")
    assert {status for status, _ in taken_over} == {"done"} and victim not in {c for _, c in taken_over}
    assert f"listing range {range_id}, " in logs and f"continuing after {position!r}" in logs
    assert any(q.get("start-after") == position for q in proxy.listings)
    # and the listing was shared out: the folders were ranges of their own
    scopes = {row[0] for row in cli.query("SELECT scope FROM listing_ranges")}
    assert {"", "f0/", "f4/", "deep/", "deep/er/"} <= scopes, scopes
    listers = {row[0] for row in cli.query("SELECT DISTINCT claimed_by FROM listing_ranges")}
    assert len(listers - {victim}) == 2


def test_a_run_killed_while_listing_leaves_a_range_the_next_run_takes_at_once(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    # given an initial sync on PostgreSQL killed with -9 while its lister holds a range half-listed
    keys = [f"f{f}/{n:02d}.txt" for f in range(3) for n in range(12)]
    for key in keys:
        bucket.put(key, key.encode())
    with SlowListingProxy(bucket.endpoint, max_keys=3, delay_s=0.2) as proxy:
        cli.env.update(DATABASE_URL=postgres_url, CUSTOMER_S3_ENDPOINT=proxy.endpoint,
                       WORKER_LEASE_S="300", LISTERS="1")  # the run's one lister holds its name
        first = cli.start("initial-sync")
        holder = f"run:{socket.gethostname()}:{first.pid}"

        def listing_held() -> list[tuple[int]]:
            return [(row[0],) for row in cli.query(
                "SELECT id FROM listing_ranges WHERE claimed_by = ? AND done = 0 AND after != ''",
                (holder,))]

        stop_when(first, listing_held)
        first.send_signal(signal.SIGKILL)
        first.wait()
        # when the next initial sync runs, the range's 300 s lease still far from over
        started = time.monotonic()
        second = cli.run("initial-sync", timeout=120)
        took = time.monotonic() - started
    # then it took the dead run's range at once and delivered every object once
    assert second.returncode == 0, second.stderr[-3000:]
    assert "listing ranges an earlier run held are free again" in second.stderr
    assert took < 100, took  # not after the lease
    saves = Counter(op["path"] for op in api.operations() if op["op"] == "saveToDisk")
    assert set(saves) == set(keys) and max(saves.values()) <= 2, saves.most_common(3)
    assert_api_matches_bucket(api, bucket, {})
    assert cli.query("SELECT value FROM settings WHERE key = 'initial_sync_completed'") != []


def listed_by_three_workers(cli: Cli, bucket: Bucket, postgres_url: str, keys: list[str],
                            max_keys: int) -> tuple[str, list[dict[str, str]]]:
    """Put ``keys`` in the bucket, start an initial sync on PostgreSQL with ``--plan-only`` and
    have three ``worker --until-idle`` list and apply it through a proxy that cuts listings to
    ``max_keys`` a page (0.05 s each); returns the workers' logs and the listings' queries."""
    for key in keys:
        bucket.put(key, key.encode())
    with SlowListingProxy(bucket.endpoint, max_keys=max_keys, delay_s=0.05) as proxy:
        cli.env.update(DATABASE_URL=postgres_url, CUSTOMER_S3_ENDPOINT=proxy.endpoint)
        assert cli.run("initial-sync", "--plan-only").returncode == 0
        # one lister a worker (LISTERS=1): the ranges are shared between processes
        workers = [cli.start("worker", "--until-idle", SYNC_WORKERS="2", LISTERS="1") for _ in range(3)]
        for worker in workers:
            worker.wait(timeout=120)
    logs = "".join((cli.workdir / f"process-{n}.log").read_text() for n in range(3))
    assert [w.returncode for w in workers] == [0, 0, 0], logs[-3000:]
    return logs, proxy.listings


def assert_delivered_once(cli: Cli, api: Api, keys: list[str]) -> None:
    saves = Counter(op["path"] for op in api.operations() if op["op"] == "saveToDisk")
    assert sorted(saves) == keys and set(saves.values()) == {1}, saves.most_common(3)
    assert cli.query("SELECT value FROM settings WHERE key = 'initial_sync_completed'") != []


def test_a_bucket_without_folders_is_split_by_probing_and_listed_by_several_workers(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    # given 160 keys with no folder (hashed names), listed 4 keys a page
    keys = sorted(f"{hashlib.sha256(str(n).encode()).hexdigest()[:12]}.bin" for n in range(160))
    # when three workers list and apply it
    logs, listings = listed_by_three_workers(cli, bucket, postgres_url, keys, max_keys=4)
    probes = [q for q in listings if q.get("max-keys") == "1"]
    # then the one range was split at keys the bucket holds, and several workers listed
    rows = cli.query("SELECT after, until, claimed_by, done FROM listing_ranges ORDER BY id")
    assert len(rows) > 2 and all(done == 1 for *_, done in rows)
    bounds = {until for _, until, _, _ in rows if until is not None}
    assert bounds and bounds <= set(keys), bounds  # every boundary is a key of the bucket
    assert len({claimed for _, _, claimed, _ in rows}) >= 2
    assert "split after" in logs and probes
    # and every object reached the file manager once
    assert_delivered_once(cli, api, keys)


def test_a_huge_folder_among_small_neighbours_is_split_by_probing_it(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    # given twelve folders on one listing page, so grouped into eight ranges: the huge one
    # ('big/', 400 keys in 16 folders of its own) shares a subtree range with a small neighbour
    keys = sorted([f"f{n:02d}/only.txt" for n in range(11)]
                  + [f"big/{n % 16:x}/{n:03d}.bin" for n in range(400)])
    # when three workers list and apply it
    logs, _ = listed_by_three_workers(cli, bucket, postgres_url, keys, max_keys=16)
    # then the subtree range handed its neighbour on, and the huge folder was cut at keys it
    # holds into ranges of that folder alone, listed by more than one worker
    rows = cli.query("SELECT scope, folders, until, claimed_by, done FROM listing_ranges ORDER BY id")
    assert all(done == 1 for *_, done in rows)
    assert ("f00/", None) in {(scope, folders) for scope, folders, *_ in rows}
    assert "hands 1 folders on from 'f00/'" in logs
    big = [(until, claimed) for _, folders, until, claimed, _ in rows if folders == '["big/"]']
    bounds = {until for until, _ in big if until is not None}
    assert len(big) > 2 and bounds and bounds <= set(keys), big
    assert len({claimed for _, claimed in big}) >= 2, big
    # and every object reached the file manager once
    assert_delivered_once(cli, api, keys)


def test_several_listers_in_one_run_list_folders_at_once_and_plan_each_object_once(
        cli: Cli, bucket: Bucket, api: Api) -> None:
    # given eight folders of six keys, listed 3 keys a page, each page after 0.2 s
    keys = sorted(f"f{f}/{n:02d}.txt" for f in range(8) for n in range(6))
    for key in keys:
        bucket.put(key, key.encode())
    with SlowListingProxy(bucket.endpoint, max_keys=3, delay_s=0.2) as proxy:
        # when one initial sync (SQLite, or PostgreSQL under TEST_DATABASE_URL) runs four listers
        result = cli.run("initial-sync", CUSTOMER_S3_ENDPOINT=proxy.endpoint, LISTERS="4")
    # then the folders' listings overlapped, several listers held ranges, and every object
    # reached the file manager once
    assert result.returncode == 0, result.stderr[-3000:]
    assert proxy.most_at_once >= 2, proxy.most_at_once
    listers = {row[0] for row in cli.query("SELECT DISTINCT claimed_by FROM listing_ranges")}
    assert len(listers) >= 2 and all(name.split("/")[-1] in "0123" for name in listers), listers
    assert_delivered_once(cli, api, keys)
    assert_api_matches_bucket(api, bucket, {})
