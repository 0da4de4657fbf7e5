"""The orchestration of runs (initial sync, incremental sync, reconcile) and the status."""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sync_service.clients.event_source import EventSource, MemorySource
from sync_service.clients.event_watch import EventWatch, NatsWatch, SpoolWatch
from sync_service.clients.file_listing import list_files
from sync_service.clients.file_spool import FileSpoolSource
from sync_service.clients.infrastructure_api import InfrastructureAPI
from sync_service.clients.ordered_listing import iter_sorted_pages
from sync_service.clients.ranged_reads import RangedGets
from sync_service.clients.storage import ObjectStore, open_store
from sync_service.errors import SyncError
from sync_service.execution.executor import Executor
from sync_service.models.config import SyncConfig
from sync_service.models.data_models import FileOperation, OperationFailure, RunReport, iso_utc
from sync_service.planning.diff import diff_records
from sync_service.planning.filters import ObjectFilter
from sync_service.planning.plan_order import plan_operations
from sync_service.planning.planners import (
    PlanEntry,
    plan_dirty,
    plan_page,
)
from sync_service.planning.renames import adopt_renames
from sync_service.runs.housekeeping import DAY_S, Housekeeper
from sync_service.runs.progress import Progress
from sync_service.runs.run_reports import RunReports
from sync_service.runs.status import RECENT_SHOWN, StatusReader
from sync_service.runs.worker import Worker, WorkerSettings, worker_name
from sync_service.sources.checker import CheckResult, compare
from sync_service.sources.delete_guard import DeleteGuard
from sync_service.sources.event_processor import POSITION_KEY, EventProcessor, ReplayResult
from sync_service.sources.lister_pool import ListerPool
from sync_service.sources.reconciler import Drift, find_drift
from sync_service.store.csv_processor import CSVProcessor
from sync_service.store.database_manager import DatabaseManager
from sync_service.store.heartbeat import Heartbeat
from sync_service.store.operations import RUN_HOLDER_PREFIX, Holder
from sync_service.store.outage import OutageWatch
from sync_service.store.run_lock import lock_for
from sync_service.utils.clock import Clock
from sync_service.utils.logging_setup import set_run_id
from sync_service.utils.paths import unsyncable
from sync_service.utils.redaction import redact

logger = logging.getLogger(__name__)

INITIAL_SYNC = "initial-sync"
INCREMENTAL_SYNC = "incremental-sync"
RECONCILE = "reconcile"
#: Seconds between looks at a shared plan while workers hold the rest of it, when no wake-up
#: comes (a lease that ran out frees claims without one).
SHARED_POLL_S = 1.0
#: How long the daemon's fetch of the messages NATS counts as waiting may take (it ends as
#: soon as they have come).
AWAKE_FETCH_WAIT_S = 5.0


class SyncService:
    """Runs syncs between the customer bucket and the file manager, and reports on them."""

    def __init__(self, config: SyncConfig, s3: ObjectStore | None = None,
                 db: DatabaseManager | None = None, api: InfrastructureAPI | None = None,
                 csv: CSVProcessor | None = None, clock: Clock | None = None,
                 interactive: bool | None = None,
                 on_finish: Callable[[RunReport, str], None] | None = None,
                 long_lived: bool = False) -> None:
        self.config = config
        self._s3 = s3
        self.clock = clock or Clock()
        self.db = db or DatabaseManager(config.database)
        # A worker or a daemon waits as long as the database is away; a command gives up.
        self.outage = OutageWatch(self.db.location, clock=self.clock, give_up_after_s=(
            None if long_lived else config.database_outage_timeout))
        self.db.database.outage = self.outage
        # A run claims what it applies in this name, as a worker does in its own: one engine on
        # both databases, and on PostgreSQL nothing goes out twice beside workers.
        self.holder: Holder = (f"{RUN_HOLDER_PREFIX}{worker_name()}", config.worker_lease)
        self.api = api or InfrastructureAPI(
            config.api_base_url, token=config.api_token, timeout=config.api_timeout,
            max_retries=config.max_retries, pool_size=config.sync_workers + 4, clock=self.clock,
            max_rps=config.api_max_rps, bwlimit=config.bwlimit)
        self.csv = csv or CSVProcessor(config.export_dir)
        self.reports = RunReports(config, self.db, self.api, self.clock, on_finish)
        self.guard = DeleteGuard(self.db)
        self.rules = ObjectFilter.from_config(config)  # what is synced, for every planner
        self.status = StatusReader(self)
        self.interactive = interactive
        self.lock = lock_for(config.database)

    @property
    def s3(self) -> ObjectStore:
        """The bucket client, built on first use so commands without S3 never need one."""
        if self._s3 is None:
            self._s3 = open_store(self.config)
        return self._s3

    def new_run_id(self, mode: str) -> str:
        """A sortable, unique run id such as ``initial-sync-20261124T071300Z-3f9a``."""
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%SZ")
        return f"{mode}-{stamp}-{secrets.token_hex(2)}"

    def event_source(self, *, awake: bool = False, snapshot: bool = False) -> EventSource:
        """The configured source of events (close it with ``close_source`` when done);
        ``awake`` (the daemon, woken by a watch) or ``snapshot`` (a dry run): a replay takes
        what is stored now and does not wait for more."""
        if self.config.event_source == "nats":
            from sync_service.clients.nats_source import FETCH_WAIT_S, NatsSource

            return NatsSource(self.config.nats_url, self.config.nats_stream,
                              self.config.nats_subject, self.config.nats_durable,
                              ack_wait_s=self.config.nats_ack_wait,
                              max_age_s=self.config.retention_days * DAY_S,
                              fetch_wait_s=AWAKE_FETCH_WAIT_S if awake else FETCH_WAIT_S,
                              counted=awake or snapshot)
        return FileSpoolSource(self.config.events_dir)

    def event_watch(self) -> EventWatch:
        """What tells the daemon that events wait in the configured source (not started)."""
        if self.config.event_source == "nats":
            return NatsWatch(self.config.nats_url, self.config.nats_stream,
                             self.config.nats_subject, self.config.nats_durable)
        return SpoolWatch(self.config.events_dir)

    def describe_source(self) -> dict[str, Any]:
        """Where events come from and what waits there, for ``status``."""
        source = self.event_source()
        try:
            return source.describe()
        except SyncError as exc:
            return {"source": source.name, "error": redact(str(exc))}
        finally:
            close_source(source)

    def _event_processor(self, source: EventSource, db: DatabaseManager | None = None,
                         position_key: str | None = POSITION_KEY) -> EventProcessor:
        return EventProcessor(
            db or self.db, self.s3, source, dead_letters_dir=self.config.dead_letters_dir,
            permissions_key=self.config.permissions_metadata_key,
            default_permissions=self.config.default_permissions,
            bucket=self.config.customer_s3_bucket, prefix=self.config.customer_s3_prefix,
            position_key=position_key, clock=self.clock, rules=self.rules)

    @contextmanager
    def _run(self, mode: str) -> Iterator[RunReport]:
        """Hold the lock for one run, record it, and close it with its report whatever happens."""
        self.config.require_bucket()
        with self.lock, Heartbeat(self.db, [self.holder[0]], self.holder[1]):
            report = RunReport(run_id=self.new_run_id(mode), mode=mode,
                               started_at=iso_utc(self.clock.now()))
            started = self.clock.monotonic()
            self.db.start_run(report.run_id, report.mode, report.started_at)
            set_run_id(report.run_id)
            status = "error"
            try:
                yield report
                status = "ok" if report.failed == 0 else "failed"
                if self.clock.stopping:
                    status = "interrupted"
            except KeyboardInterrupt:
                status = "interrupted"
                raise
            except SyncError as exc:
                report.failures.append(OperationFailure("run", "", f"{type(exc).__name__}: {exc}"))
                report.failed += 1
                raise
            finally:
                self.reports.finish(report, status, started)
                set_run_id(None)

    # -- the one way operations reach the file manager -------------------------------------

    def _executor(self, progress: Progress | None = None) -> Executor:
        return Executor(self.s3, self.api, self.db, workers=self.config.sync_workers,
                        permissions_key=self.config.permissions_metadata_key,
                        default_permissions=self.config.default_permissions, clock=self.clock,
                        on_progress=progress.update if progress is not None else None,
                        outage=self.outage,
                        ranged=RangedGets(self.config.ranged_get_threshold, self.config.ranged_get_window,
                                          self.config.ranged_gets))

    def _apply_pending(self, executor: Executor, report: RunReport) -> None:
        """First of every run: what an interrupted run planned and did not apply, claimed as
        workers claim it, so none of it goes out twice."""
        # The run lock proves the runs that claimed these are dead: no lease to wait out.
        released = self.db.operations.release_runs()
        if released:
            logger.info("%d operations an earlier run held are free again", released)
        released = self.db.ranges.release_runs()
        if released:
            logger.info("%d listing ranges an earlier run held are free again", released)
        # Until nothing is free: none left, or workers hold the rest.
        executor.apply_claimed(self.holder, report, batch=self.config.worker_batch,
                               finished=lambda: True, poll_s=SHARED_POLL_S)

    def _plan_and_apply(self, report: RunReport, executor: Executor, *,
                        exclude: Iterable[int] = ()) -> None:
        """Plan the dirty records (but those already tried in this run) and apply the plan."""
        timings = report.phase_seconds
        tick = self.clock.monotonic()
        # Stored unclaimed: on PostgreSQL a cycle's plan is shared with any workers.
        stored = plan_dirty(self.db, report.run_id, exclude=exclude, csv=self.csv)
        timings["plan"], tick = _lap(self.clock, tick)
        if stored:
            self._apply_shared(report, executor)
        timings["apply"], tick = _lap(self.clock, tick)
        if stored:
            logger.info("%s: %d operations planned, %d succeeded, %d failed", report.run_id,
                        sum(1 for s in stored if not s.operation.temp), report.succeeded,
                        report.failed)

    def _apply_shared(self, report: RunReport, executor: Executor, *,
                      listing: Callable[[], bool] = lambda: False) -> None:
        """Apply a stored plan as a worker does, beside any workers sharing the database: claim
        batches until none of this run's operations is pending (and ``listing`` says no more
        are coming); then count in ``report`` what the others applied of it."""
        # While nothing is free to claim, workers hold the rest, or it is still being listed.
        executor.apply_claimed(
            self.holder, report, batch=self.config.worker_batch, poll_s=SHARED_POLL_S,
            finished=lambda: not listing() and self.db.operations.pending_of(report.run_id) == 0)
        counted = executor.counted_rows  # a run may come here twice (retries, then its listing)
        for outcome in self.db.operations.finished_of(report.run_id, exclude=counted):
            executor.count(outcome, report)
            counted.add(outcome.stored.row_id)

    def initial_sync_completed(self) -> bool:
        """True once an initial sync has planned the whole listing."""
        return self.db.ranges.completed()

    # -- initial sync ------------------------------------------------------------------------

    def initial_sync(self, *, plan_only: bool = False) -> RunReport:
        """Deliver every object of the bucket to the file manager, then export the state CSV.

        Pending operations and earlier failures go first; an interrupted initial sync is
        continued after the last listing page it planned. With ``plan_only`` the listing is
        planned and stored, nothing is applied: ``worker`` processes apply it.
        """
        if plan_only:
            return self._plan_initial_sync()
        with self._run(INITIAL_SYNC) as report:
            progress = Progress(report, interactive=self.interactive)
            executor = self._executor(progress)
            timings, tick = report.phase_seconds, self.clock.monotonic()
            try:  # one event loop and one set of connection pools for the whole run
                self._apply_pending(executor, report)
                timings["pending"], tick = _lap(self.clock, tick)
                if not self.clock.stopping and plan_dirty(self.db, report.run_id,
                                                          exclude=executor.attempted):
                    self._apply_shared(report, executor)
                timings["retry"], tick = _lap(self.clock, tick)
                logger.info("initial sync %s: bucket %r prefix %r -> %s, %d workers",
                            report.run_id, self.config.customer_s3_bucket,
                            self.config.customer_s3_prefix, self.config.api_base_url,
                            self.config.sync_workers)
                listed = self._list(report, executor)
                timings["listing"], tick = _lap(self.clock, tick)
            finally:
                executor.close()
                progress.close()
            if listed:
                path = self.csv.export(self.db.iter_records(), name=f"{report.run_id}-state")
                logger.info("state exported to %s", path)
        return report

    def _start_ranges(self, run_id: str) -> int:
        left = self.db.ranges.start(self.config.customer_s3_bucket, self.config.customer_s3_prefix,
                                    run_id)
        logger.info("initial sync %s: %d key ranges of the listing to list", run_id, left)
        return left

    def _list(self, report: RunReport, executor: Executor) -> bool:
        """List the bucket in key ranges (beside any workers, on PostgreSQL), ``LISTERS``
        lister threads planning pages as the claim loop applies them; True once every range was listed and
        this run's plan applied."""
        self._start_ranges(report.run_id)
        if self.rules.active:
            logger.info("initial sync %s: syncing %s", report.run_id, self.rules.describe())
        lister = ListerPool(self.s3, self.db, name=self.holder[0], count=self.config.listers,
                            lease_s=self.holder[1], clock=self.clock, until_listed=True,
                            outage=executor.outage, rules=self.rules).start()
        try:
            self._apply_shared(report, executor, listing=lambda: lister.running)
        finally:
            lister.stop()
        lister.join()
        for reason, count in sorted(self.db.ranges.skipped(report.run_id).items()):
            report.skip(reason, count)  # whichever process listed the range
        return not self.clock.stopping and self.db.ranges.left() == 0

    def _plan_initial_sync(self) -> RunReport:
        """Store the first key range of the listing and nothing else: workers list and apply
        it (PostgreSQL), or the next initial sync does."""
        with self._run(INITIAL_SYNC) as report:
            self._start_ranges(report.run_id)
        return report

    def work(self, *, until_idle: bool = False) -> RunReport:
        """Claim pending operations from the shared database and apply them (``worker``)."""
        self.config.require_bucket()
        settings = WorkerSettings(batch=self.config.worker_batch, lease_s=self.config.worker_lease,
                                  until_idle=until_idle, listers=self.config.listers)
        return Worker(self.s3, self.db, self._executor(), settings, clock=self.clock,
                      rules=self.rules).run()

    def initial_sync_plan(self) -> list[PlanEntry]:
        """What an initial sync would do now, without doing anything: the listing planned page
        by page by the real planner (and the filter rules), on a copy of the database."""
        self.config.require_bucket()
        with tempfile.TemporaryDirectory(prefix="sync-dry-run-") as folder:
            copy = self.db.copy_to(Path(folder) / "sync.db")
            try:
                planned = [PlanEntry.of(s.operation) for s in copy.operations.pending()]
                for page in self.s3.iter_pages():
                    batch = plan_page(copy, "dry-run", page, rules=self.rules)
                    planned += [PlanEntry("skip", key, reason=reason) for key, reason in batch.skipped_keys]
                    planned += [PlanEntry.of(s.operation) for s in batch.operations]
            finally:
                copy.close()
        return planned

    # -- incremental sync --------------------------------------------------------------------

    def incremental_sync(self) -> RunReport:
        """Apply what is pending → replay events → plan the dirty records → apply → report."""
        with self._run(INCREMENTAL_SYNC) as report:
            source = self.event_source()
            try:
                self._cycle(report, source, POSITION_KEY)
            finally:
                close_source(source)
        return report

    def cycle_into(self, report: RunReport, source: EventSource, *, limit: int | None = None,
                   replayed: Callable[[ReplayResult], None] | None = None) -> ReplayResult:
        """One incremental cycle of a run held open by the caller (the daemon's report
        window, which holds the lock): its counts go to ``report``, its operations are stored
        under ``report.run_id``; at most ``limit`` events are replayed, then ``replayed``
        is told."""
        with Heartbeat(self.db, [self.holder[0]], self.holder[1]):
            set_run_id(report.run_id)
            try:
                with self._executor() as executor:
                    return self._cycle_with(executor, report, source, POSITION_KEY, limit=limit,
                                            replayed=replayed)
            finally:
                set_run_id(None)

    def _cycle(self, report: RunReport, source: EventSource, position_key: str | None) -> None:
        with self._executor() as executor:
            self._cycle_with(executor, report, source, position_key)

    def _cycle_with(self, executor: Executor, report: RunReport, source: EventSource,
                    position_key: str | None, *, limit: int | None = None,
                    replayed: Callable[[ReplayResult], None] | None = None) -> ReplayResult:
        tick = self.clock.monotonic()
        self._apply_pending(executor, report)
        report.phase_seconds["pending"], tick = _lap(self.clock, tick)
        if self.clock.stopping:
            return ReplayResult()
        replay = self._event_processor(source, position_key=position_key).replay(limit=limit)
        replay.touched |= adopt_renames(self.db, replay.created, replay.deleted)
        report.events_applied, report.events_rejected = replay.applied, replay.rejected
        dropped = replay.dropped()
        if dropped:  # one line of counts a run, not one per event
            logger.info("%s: events left alone: %s", report.run_id,
                        ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items())))
        for reason, count in dropped.items():
            report.skip(reason, count)
            report.events_skipped[reason] = report.events_skipped.get(reason, 0) + count
        report.phase_seconds["replay"], tick = _lap(self.clock, tick)
        if replayed is not None:
            replayed(replay)
        # Records tried by the pending step wait for the next run, unless an event changed them.
        self._plan_and_apply(report, executor, exclude=executor.attempted - replay.touched)
        return replay

    def incremental_sync_plan(self) -> tuple[list[FileOperation], ReplayResult]:
        """What an incremental sync would do now, computed on a copy of the database.

        The copy takes the replay; the source is read but not acknowledged, the real database
        and the file manager are untouched.
        """
        self.config.require_bucket()
        with tempfile.TemporaryDirectory(prefix="sync-dry-run-") as folder:
            copy = self.db.copy_to(Path(folder) / "sync.db")
            source = self.event_source(snapshot=True)
            try:
                replay = self._event_processor(source, db=copy).replay(acknowledge=False)
            finally:
                close_source(source)
            adopt_renames(copy, replay.created, replay.deleted)
            pending = [s.operation for s in copy.operations.pending()]
            waiting = {o.record_id for o in pending}
            ids = [i for i in copy.records.dirty_ids() if i not in waiting]
            plan = pending + plan_operations(list(diff_records(
                copy.records.rows_of(ids, "baseline"), copy.records.rows_of(ids, "files"))))
            copy.close()
        return plan, replay

    # -- reconcile ---------------------------------------------------------------------------

    def reconcile(self, *, max_delete: int | None = None, dry_run: bool = False,
                  hold_deletes: bool = False) -> tuple[Drift, RunReport | None]:
        """Repair drift between the bucket and the records through the same plan-and-apply path.

        A repair that would delete more than ``max_delete`` files (default: 10% of the records,
        at least 1) is refused (``RefusedError``) before anything changes; with
        ``hold_deletes`` (the daemon) the rest of the repair is applied and the deletes are
        held: counted in the report, kept for ``status`` and ``/health``, not applied.
        """
        self.config.require_bucket()
        if dry_run:  # nothing is held, nothing refused (under the lock: records stay still)
            with self.lock:
                return find_drift(self.s3, self.db, self.rules), None
        with self._run(RECONCILE) as report:
            found = find_drift(self.s3, self.db, self.rules)
            for reason, count in sorted(found.skipped.items()):
                report.skip(reason, count)
            drift = self.guard.check(found, max_delete, hold=hold_deletes, run_id=report.run_id)
            if drift.held:
                report.skipped += len(drift.held)
                report.skipped_reasons["held_delete"] = len(drift.held)
            self._cycle(report, MemorySource(drift.as_events(report.run_id)), None)
            path = self.csv.export(self.db.iter_records(), name=f"{report.run_id}-state")
            logger.info("state exported to %s", path)
        return drift, report

    def housekeeper(self) -> Housekeeper:
        """The sweeper of what is older than RETENTION_DAYS, with the source's redelivery window."""
        window: float | None = self.config.retention_days * DAY_S  # the spool: processed files' life
        source = self.event_source()
        try:
            window_of = getattr(source, "redelivery_window_s", None)  # NATS: the stream's max age
            if window_of is not None:
                window = window_of()
        finally:
            close_source(source)
        folders = {"exports": self.config.export_dir, "reports": self.config.reports_dir,
                   "dead_letters": self.config.dead_letters_dir,
                   "processed": self.config.events_dir / "processed"}
        return Housekeeper(self.db, folders, retention_days=self.config.retention_days,
                           redelivery_window_s=window, clock=self.clock)

    def held_deletes(self) -> dict[str, Any] | None:
        """The deletes the last reconcile held back (count, limit, some paths), if any."""
        return self.guard.held()

    def last_reconcile_at(self) -> str | None:
        """When the last reconcile started (ISO-8601), or the last initial sync if none ran."""
        runs = self.db.last_runs()
        for mode in (RECONCILE, INITIAL_SYNC):
            if mode in runs:
                return str(runs[mode]["started_at"])
        return None

    def check(self) -> CheckResult:
        """Compare the bucket, the records and (where it can list them) the file manager."""
        self.config.require_bucket()
        self.s3.check()  # objects readable as a sync reads them, not only listed: else exit 1
        objects = (s for page in iter_sorted_pages(self.s3) for s in page  # the filtered view
                   if unsyncable(s.key, s.path, s.size) is None
                   and self.rules.skip_reason(s.path, s.size) is None)
        result = compare(objects, self.db.records.iter_by_path(), list_files(self.api))
        result.pending_operations = self.db.operation_counts()["pending"]
        return result

    # -- status (runs/status.py) -----------------------------------------------------------

    def get_sync_status(self, *, live: bool = True) -> dict[str, Any]:
        """Records, last runs, operations, event position, dead letters and live checks."""
        return self.status.read(live=live)

    def live_status(self) -> dict[str, Any]:
        """The part of the status that asks other servers, each check with its latency."""
        return self.status.live()

    def recent_runs(self, limit: int = RECENT_SHOWN) -> list[dict[str, Any]]:
        """The newest runs of every mode, newest first, each with the numbers of its report."""
        return self.status.recent_runs(limit)


def close_source(source: EventSource) -> None:
    """Release a source's connection, if it has one."""
    close = getattr(source, "close", None)
    if close is not None:
        close()


def _lap(clock: Clock, since: float) -> tuple[float, float]:
    now = clock.monotonic()
    return round(now - since, 3), now
