"""Workers (SPEC §9): four ``worker`` processes share one initial sync through PostgreSQL, its
listing in key ranges and its operations, one of them killed with -9 mid-run; every object
reaches the file manager once, and what the killed worker held (claimed operations, a range
half listed) is taken over by the others once its lease ran out."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections import Counter
from typing import Any

from sync_service.models.data_models import FileOperation
from sync_service.store.database_manager import DatabaseManager
from sync_service.store.operations import Outcome
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_api_matches_bucket, report_of, stop_when
from tests.helpers.waiting import wait_for

OBJECTS = 160
LEASE_S = 3


def test_four_workers_one_killed_deliver_every_object_once(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    # given an initial sync of 160 objects left to workers (PostgreSQL), and a file manager
    # answering in 30 ms
    cli.env["DATABASE_URL"] = postgres_url
    for n in range(OBJECTS):
        bucket.put(f"w/{n:03d}.txt", f"object {n}".encode(), {"n": [str(n)]} if n % 3 == 0 else None)
    planned = cli.run("initial-sync", "--plan-only")
    assert planned.returncode == 0, planned.stderr
    assert report_of(planned)["succeeded"] == 0
    assert [op["op"] for op in api.operations()] == ["syncResults"]  # the report, nothing applied
    assert cli.query("SELECT scope, done FROM listing_ranges") == [("", 0)]  # the workers list
    api.faults(fail_rate=1.0, latency_ms=30, seed=5)
    # when four workers claim from it, and one is killed with -9 while it holds claims
    workers = [cli.start("worker", "--until-idle", WORKER_BATCH="8", WORKER_LEASE_S=str(LEASE_S),
                         SYNC_WORKERS="2") for _ in range(4)]
    victim = workers[0]
    name = f"{socket.gethostname()}:{victim.pid}"

    def held_by_victim() -> list[int]:
        return [row[0] for row in cli.query(
            "SELECT id FROM operations WHERE claimed_by = ? AND status = 'pending' ORDER BY id", (name,))]

    stop_when(victim, lambda: len(held_by_victim()) > 0
              and cli.query("SELECT count(*) FROM operations WHERE status = 'done'")[0][0] >= 16)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    orphaned = held_by_victim()
    assert orphaned, "the killed worker held no claim"
    for worker in workers[1:]:
        worker.wait(timeout=120)
    api.faults()
    # then the others finished, every operation is done, the orphans by another worker
    for worker in workers[1:]:
        log = (cli.workdir / f"process-{workers.index(worker)}.log").read_text()
        assert worker.returncode == 0, log[-3000:]
        assert json.JSONDecoder().raw_decode(log[log.index("{\n"):])[0]["failed"] == 0
    assert time.monotonic() - killed_at < 60
    rows = cli.query("SELECT id, status, claimed_by FROM operations ORDER BY id")
    assert len(rows) == OBJECTS and {status for _, status, _ in rows} == {"done"}
    taken_over = {row_id: claimed for row_id, _, claimed in rows if row_id in orphaned}
    assert len(taken_over) == len(orphaned) and name not in taken_over.values()
    logs = "".join((cli.workdir / f"process-{n}.log").read_text() for n in range(1, 4))
    assert re.search(rf"claimed \d+ operations \(from [^)]*:{min(orphaned)}\)", logs)  # claimed again
    claimers = {claimed for _, _, claimed in rows}
    assert len(claimers - {name}) >= 2  # the work was shared
    # and the file manager holds the bucket, each object applied once (a repeated key replays)
    permissions = {f"w/{n:03d}.txt": {"n": [str(n)]} for n in range(0, OBJECTS, 3)}
    assert_api_matches_bucket(api, bucket, permissions)
    uploads = [op for op in api.operations() if op["op"] == "saveToDisk"]
    saves = Counter(op["path"] for op in uploads if not op["replay"])
    assert len(saves) == OBJECTS and set(saves.values()) == {1}, saves.most_common(3)
    # sent again only what the killed worker held, under its key: answered as replays
    resent = {op["path"] for op in uploads if op["replay"]}
    assert len(resent) <= len(orphaned), resent


def test_claims_follow_the_plan_phases_and_expire(postgres_url: str) -> None:
    # given a plan of two deletes, a swap (three renames), three creates, stored in PostgreSQL
    db = DatabaseManager(postgres_url)
    try:
        ids = {p: db.records.upsert(p, 1, "e", "2026-11-24T00:00:00Z", "{}") for p in "abcdefgh"}
        plan = [FileOperation("create", ids["f"], "f"), FileOperation("delete", ids["a"], "a"),
                FileOperation("rename", ids["c"], "c", "tmp"), FileOperation("create", ids["g"], "g"),
                FileOperation("rename", ids["d"], "d", "c"), FileOperation("delete", ids["b"], "b"),
                FileOperation("rename", ids["c"], "tmp", "d"), FileOperation("create", ids["h"], "h")]
        db.operations.add("r1", plan)
        ops = db.operations
        # when workers claim: the deletes first, whatever the batch size
        first = ops.claim("w1", 10, 60)
        assert [s.operation.op for s in first] == ["delete", "delete"]
        assert ops.claim("w2", 10, 60) == []  # the next phase waits for the deletes
        ops.record([Outcome(s, "done") for s in first])
        # then the renames, whole and in order, to one worker; nobody else while they are held
        renames = ops.claim("w2", 1, 60)
        assert [(s.operation.path, s.operation.new_path) for s in renames] == [
            ("c", "tmp"), ("d", "c"), ("tmp", "d")]
        assert ops.claim("w3", 10, 60) == []
        ops.record([Outcome(s, "done") for s in renames])
        # then the creates, in batches, skipping what another holds
        one, other = ops.claim("w1", 2, 60), ops.claim("w2", 2, 60)
        assert [s.operation.path for s in one] == ["f", "g"] and [s.operation.path for s in other] == ["h"]
        assert ops.claim("w3", 10, 60) == []
        assert ops.pending() == []  # a planner's run leaves live claims to their workers
        # and a claim nobody records goes back once its lease ran out, with the same key
        assert ops.release("w1") == 2 and ops.release("w2") == 1
        short = ops.claim("w1", 10, 0.0)
        taken: list[list[Any]] = []
        wait_for(lambda: taken.append(ops.claim("w3", 10, 60)) or taken[-1], 10, "the expired claim going back")
        again = taken[-1]
        assert [s.key for s in again] == [s.key for s in short] == [s.key for s in one + other]
    finally:
        db.close()


def test_a_worker_without_postgresql_is_refused_in_one_line(cli: Cli) -> None:
    cli.env.pop("DATABASE_URL", None)  # the harness sets it where TEST_DATABASE_URL is set
    result = cli.run("worker")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: worker needs DATABASE_URL"), lines


def test_a_worker_beside_an_initial_sync_shares_it_and_nothing_goes_out_twice(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    # given a bucket, the state in PostgreSQL, and a worker already polling for work
    cli.env["DATABASE_URL"] = postgres_url
    for n in range(60):
        bucket.put(f"s{n % 3}/{n:02d}.txt", f"object {n}".encode())
    for folder in ("s0/", "s1/", "s2/"):
        bucket.put(folder, b"")  # folder markers: left alone, and counted, by whoever lists them
    api.faults(fail_rate=1.0, latency_ms=20, seed=3)
    worker = cli.start("worker", WORKER_BATCH="4", SYNC_WORKERS="2")
    name = f"{socket.gethostname()}:{worker.pid}"
    wait_for(lambda: "claiming up to" in (cli.workdir / "process-0.log").read_text(), timeout=30)
    # when an initial sync plans and applies beside it
    try:
        result = cli.run("initial-sync", SYNC_WORKERS="2", WORKER_BATCH="4")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    api.faults()
    # then the run's report counts its whole plan, whoever applied it, and nothing went out twice
    assert result.returncode == 0, result.stderr[-3000:]
    assert report_of(result)["succeeded"] == 60 and report_of(result)["failed"] == 0
    assert report_of(result)["skipped_reasons"] == {"folder_marker": 3}
    assert api.stats()["replayed"] == 0  # a second send of a key would be answered from the cache
    saves = Counter(op["path"] for op in api.operations() if op["op"] == "saveToDisk")
    assert len(saves) == 60 and set(saves.values()) == {1}
    claimers = {row[0] for row in cli.query("SELECT DISTINCT claimed_by FROM operations")}
    assert name in claimers and any(c.startswith("run:") for c in claimers), claimers
    assert cli.query("SELECT count(*) FROM settings WHERE key = 'initial_sync_completed'") == [(1,)]


def test_workers_share_an_incremental_cycle_and_its_report_counts_all_of_it(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    from tests.helpers.sync import spool, synced

    # given a synced bucket on PostgreSQL, 80 new objects announced by events, and two workers
    cli.env["DATABASE_URL"] = postgres_url
    synced(cli, bucket, {"base.txt": b"base"})
    for n in range(80):
        bucket.put(f"new/{n:02d}.txt", f"new {n}".encode())
    spool(cli, "001", *({"type": "create", "path": f"new/{n:02d}.txt"} for n in range(80)))
    api.faults(fail_rate=1.0, latency_ms=30, seed=7)
    workers = [cli.start("worker", WORKER_BATCH="4", SYNC_WORKERS="2") for _ in range(2)]
    names = {f"{socket.gethostname()}:{w.pid}" for w in workers}
    for n in range(2):
        wait_for(lambda n=n: "claiming up to" in (cli.workdir / f"process-{n}.log").read_text(), timeout=30)
    # when an incremental sync replays them and applies its plan
    try:
        result = cli.run("incremental-sync", SYNC_WORKERS="2", WORKER_BATCH="4")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    api.faults()
    # then the workers applied part of the cycle, nothing was sent twice, and the run's report
    # counts every operation of its plan, whoever applied it
    assert result.returncode == 0, result.stderr[-3000:]
    report = report_of(result)
    assert report["succeeded"] == 80 and report["failed"] == 0
    assert report["operations"]["create"] == 80
    assert api.stats()["replayed"] == 0
    saves = Counter(op["path"] for op in api.operations() if op["op"] == "saveToDisk")
    assert len([p for p in saves if p.startswith("new/")]) == 80 and set(saves.values()) == {1}
    run_id = report["run_id"]
    claimers = Counter(row[0] for row in cli.query(
        "SELECT claimed_by FROM operations WHERE run_id = ?", (run_id,)))
    assert sum(claimers.values()) == 80
    assert names & set(claimers), claimers  # the workers took part
    assert any(c.startswith("run:") for c in claimers), claimers  # and so did the run
