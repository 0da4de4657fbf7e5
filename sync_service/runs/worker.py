"""A worker (SPEC §9): claims pending operations from the shared PostgreSQL database in batches
and applies them with the executor; any number of workers, on any number of machines.

A claim stamps a batch with the worker's name and a lease (``OperationStore.claim``: ``FOR
UPDATE SKIP LOCKED``, so workers never queue behind each other's claims), which the worker's
``Heartbeat`` renews while it lives. A worker killed mid-batch stops beating: once its lease
runs out (30 s by default) another worker claims its operations again,
with the same Idempotency-Key (``<run id>:<row id>``), so the file manager applies each
operation once whoever sends it. Plans keep their order: a worker claims only from the oldest
run with pending operations, and only from its earliest phase (deletes, renames and moves,
creates and updates, permissions); renames and moves, which go in the planner's order, are
claimed whole by one worker.

Beside its executor each worker lists: ``LISTERS`` lister threads (``ListerPool``) claim ranges
of an initial listing (stored by ``initial-sync``), so the listing of a large bucket is shared
out as well.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from sync_service.clients.storage.base import ObjectStore
from sync_service.execution.executor import Executor
from sync_service.models.data_models import RunReport, iso_utc
from sync_service.planning.filters import EVERYTHING, ObjectFilter
from sync_service.sources.lister_pool import DEFAULT_LISTERS, ListerPool
from sync_service.store.database_manager import DatabaseManager
from sync_service.store.heartbeat import Heartbeat
from sync_service.utils.clock import Clock

logger = logging.getLogger(__name__)

#: Operations a worker claims at once.
DEFAULT_BATCH = 64
#: Seconds a claim lasts unless its holder's heartbeat renews it (every third of it): a worker
#: that stopped beating is taken for dead, and what it claimed goes back to the others.
DEFAULT_LEASE_S = 30.0
#: Seconds between looks at the table while there is nothing to claim and no wake-up comes (a
#: lease that ran out frees claims without one).
IDLE_POLL_S = 2.0


def worker_name() -> str:
    """This process's name in the ``claimed_by`` column: ``<host>:<pid>``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerSettings:
    """How a worker claims."""

    batch: int = DEFAULT_BATCH
    lease_s: float = DEFAULT_LEASE_S
    until_idle: bool = False
    listers: int = DEFAULT_LISTERS


class Worker:
    """Claims batches of pending operations and applies them until stopped (or idle)."""

    def __init__(self, s3: ObjectStore, db: DatabaseManager, executor: Executor,
                 settings: WorkerSettings | None = None, *, name: str | None = None,
                 clock: Clock | None = None, rules: ObjectFilter = EVERYTHING) -> None:
        self.s3 = s3
        self.rules = rules
        self.db = db
        self.executor = executor
        self.settings = settings or WorkerSettings()
        self.name = name or worker_name()
        self.clock = clock or Clock()

    def run(self) -> RunReport:
        """Claim and apply until stopped; with ``until_idle``, until no operation is pending."""
        report = RunReport(run_id=f"worker-{self.name}", mode="worker",
                           started_at=iso_utc(self.clock.now()))
        started = self.clock.monotonic()
        logger.info("worker %s: claiming up to %d operations at a time, lease %ss",
                    self.name, self.settings.batch, self.settings.lease_s)
        with Heartbeat(self.db, [self.name], self.settings.lease_s):
            lister = ListerPool(self.s3, self.db, name=self.name, count=self.settings.listers,
                                lease_s=self.settings.lease_s, clock=self.clock, report=report,
                                outage=self.executor.outage,
                                until_listed=self.settings.until_idle, rules=self.rules).start()
            try:
                with self.executor:
                    self.executor.apply_claimed((self.name, self.settings.lease_s), report,
                                                batch=self.settings.batch, poll_s=IDLE_POLL_S,
                                                log_claims=True, finished=lambda: self._finished(lister))
            finally:
                lister.stop()
            lister.join()
        released = self.db.operations.release(self.name)
        if released:
            logger.info("worker %s: stopping; %d claimed operations given back", self.name, released)
        report.finished_at = iso_utc(self.clock.now())
        report.duration_s = round(self.clock.monotonic() - started, 3)
        return report

    def _finished(self, lister: ListerPool) -> bool:
        """Nothing free to claim: stop if the lister failed (join() raises it), or, with
        ``until_idle``, once nothing is left to list and nothing is pending."""
        if lister.error is not None:
            return True
        return (self.settings.until_idle and not lister.running
                and self.db.operations.counts()["pending"] == 0)
