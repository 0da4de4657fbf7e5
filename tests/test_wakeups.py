"""Wake-ups (SPEC §9): a claimer with nothing to do is woken when work is added, in its own
process and, on PostgreSQL, from another process (LISTEN/NOTIFY), well before its poll."""

from __future__ import annotations

import threading
import time

from sync_service.models.data_models import FileOperation
from tests.helpers.harness import Databases
from tests.helpers.waiting import blocked_in_wait, wait_for

POLL_S = 30.0


def test_a_waiting_claimer_wakes_when_operations_are_added_elsewhere(databases: Databases) -> None:
    # given a claimer waiting for work (its poll 30 s), and a planner: another process of the
    # same PostgreSQL database, or on SQLite (one process) a thread of the same one
    waiting = databases.open()
    planner = databases.open() if waiting.engine == "postgresql" else waiting
    wakeup = waiting.database.wakeups.subscribe()
    assert not wakeup.wait(0.3)  # nothing yet
    woke: list[float] = []
    thread = threading.Thread(target=lambda: woke.append(time.monotonic()) if wakeup.wait(POLL_S) else None)
    thread.start()
    try:
        wait_for(lambda: blocked_in_wait(thread), 10, "the claimer waiting")
        # when the other stores a plan
        record = planner.records.upsert("a.txt", 1, "e", "2026-12-03T00:00:00Z", "{}")
        added = time.monotonic()
        planner.operations.add("r1", [FileOperation("create", record, "a.txt")])
        thread.join(timeout=POLL_S + 5)
        # then the claimer woke within seconds, not after its poll, and finds it to claim
        assert woke and woke[0] - added < 5, woke
        assert [s.operation.path for s in waiting.operations.claim("w1", 10, 60)] == ["a.txt"]
        # and claims given back wake it too
        assert not wakeup.wait(0.1)
        planner.operations.release("w1")
        assert wakeup.wait(10)
    finally:
        wakeup.close()
