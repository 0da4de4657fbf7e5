"""Leases of claims (SPEC §7): a claim lives while its holder's heartbeat renews it, goes to
another claimer once the beats stop, and a holder that lost its claim cannot record over the
new holder (fencing)."""

from __future__ import annotations

import threading

import pytest

from sync_service.models.data_models import FileOperation, ObjectSummary, StoredOperation
from sync_service.planning.planners import plan_page
from sync_service.store.database_manager import DatabaseManager
from sync_service.store.heartbeat import Heartbeat
from sync_service.store.listing_ranges import ListingRange
from sync_service.store.operations import Delivered, Outcome
from tests.helpers.waiting import holds_for, wait_for


def _plan_of_creates(db: DatabaseManager, paths: str) -> None:
    ids = [db.records.upsert(p, 1, "e", "2026-12-03T00:00:00Z", "{}") for p in paths]
    db.operations.add("r1", [FileOperation("create", i, p) for i, p in zip(ids, paths, strict=True)])


def test_a_claim_lives_while_its_holder_beats_and_goes_when_the_beats_stop(postgres_url: str) -> None:
    db = DatabaseManager(postgres_url)
    try:
        _plan_of_creates(db, "abc")
        db.ranges.start("bucket", "", "r1")
        # given a worker holding operations and the listing range on a 1 s lease, beating
        held = db.operations.claim("w1", 10, 1.0)
        assert len(held) == 3 and db.ranges.claim("w1", 1.0) is not None
        with Heartbeat(db, ["w1"], 1.0):
            # when three leases' time passes, nobody else can take them
            holds_for(lambda: db.operations.claim("w2", 10, 60) == [] and db.ranges.claim("w2", 60) is None,
                      3, "the beating holder keeping its claims", interval=0.1)
        # then, the beats stopped, they go to the next claimer once the lease ran out
        wait_for(lambda: len(db.operations.claim("w2", 10, 60)) == 3, timeout=10)
        # the range's lease was renewed by the same beat a moment after the operations'
        taken: list[ListingRange | None] = [None]

        def range_taken() -> bool:
            taken[0] = db.ranges.claim("w2", 60)
            return taken[0] is not None

        wait_for(range_taken, timeout=10)
        assert taken[0] is not None and taken[0].scope == ""
    finally:
        db.close()


def test_a_holder_whose_lease_was_taken_over_cannot_record_its_late_outcome(postgres_url: str) -> None:
    db = DatabaseManager(postgres_url)
    try:
        _plan_of_creates(db, "a")
        # given w1's claim taken over by w2 after w1's lease ran out
        (late,) = db.operations.claim("w1", 10, 0.0)
        taken: list[StoredOperation] = []
        wait_for(lambda: taken.extend(db.operations.claim("w2", 10, 60)) or taken != [])
        (current,) = taken
        assert current.row_id == late.row_id and current.claimed_by == "w2"
        # when w1 records its outcome late
        assert db.operations.record([Outcome(late, "failed", "too late")]) == 1
        # then nothing of it is stored: the operation is still w2's, pending, no baseline
        assert db.database.query("SELECT status, claimed_by, error FROM operations") == [
            ("pending", "w2", None)]
        assert db.database.query("SELECT count(*) FROM baseline") == [(0,)]
        # and w2's own outcome is recorded
        assert db.operations.record([Outcome(current, "failed", "its own")]) == 0
        assert db.database.query("SELECT status, claimed_by, error FROM operations") == [
            ("failed", "w2", "its own")]
    finally:
        db.close()


@pytest.mark.scale
def test_sixteen_writers_plan_pages_and_record_outcomes_at_once_without_waiting_in_turn(
        postgres_url: str) -> None:
    # given sixteen processes' worth of writers on one PostgreSQL database, each with its pool
    writers = [DatabaseManager(postgres_url) for _ in range(16)]
    errors: list[BaseException] = []
    pages, keys_a_page = 6, 200

    def claim_and_record(db: DatabaseManager, n: int) -> int:
        mine = db.operations.claim(f"writer-{n}", keys_a_page, 60)
        db.operations.record([Outcome(s, "done", delivered=Delivered(
            s.operation.size, s.operation.etag, "2026-12-03T00:00:00Z", "{}")) for s in mine])
        return len(mine)

    def write(n: int) -> None:
        db = writers[n]
        try:
            for page in range(pages):
                # when each plans listing pages of its own keys, claims whatever is free (its
                # own or another's) and records the outcomes
                summaries = [ObjectSummary(f"w{n}/p{page}/{k:04d}", f"w{n}/p{page}/{k:04d}", k, f"e{k}",
                                           "2026-12-03T00:00:00Z") for k in range(keys_a_page)]
                stored = plan_page(db, "r1", summaries).operations
                claim_and_record(db, n)
                assert len(stored) == keys_a_page
            while claim_and_record(db, n):  # what is left free once it planned its pages
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(16)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        # then none failed (no lock timeout, no deadlock), and every operation is done
        assert errors == []
        db = writers[0]
        total = 16 * pages * keys_a_page
        assert db.database.query("SELECT status, count(*) FROM operations GROUP BY status") == [
            ("done", total)]
        assert db.database.query("SELECT count(*) FROM baseline") == [(total,)]
        assert db.database.query("SELECT count(*) FROM dirty") == [(0,)]
    finally:
        for writer in writers:
            writer.close()
