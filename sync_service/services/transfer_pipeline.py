"""The initial-sync pipeline: list → GET → saveToDisk → updatePermissions → record.

Three stages joined by bounded queues, so memory is flat in bucket size and object size:

* the **lister** (the calling thread) walks the listing one page at a time, skips folder
  markers and invalid keys, and compares each page with SQLite in one query, so objects
  already delivered with the same etag are not sent again;
* ``workers`` **transfer threads** stream each object from S3 straight into ``saveToDisk``
  and then set its permissions;
* one **writer thread** records delivered files in batched SQLite transactions.

The pipeline sees S3 and the API only through ``S3Manager`` and ``InfrastructureAPI``.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sync_service.clients.infrastructure_api import InfrastructureAPI
from sync_service.clients.s3_manager import S3Manager
from sync_service.errors import ObjectGone, PermanentApiError, SyncError
from sync_service.models.data_models import (
    FileRecord,
    ObjectSummary,
    OperationFailure,
    RunReport,
    SyncedFile,
)
from sync_service.services.database_manager import DatabaseManager
from sync_service.services.delivery import deliver_content
from sync_service.utils.clock import Clock
from sync_service.utils.paths import unsyncable
from sync_service.utils.permissions import permissions_from_metadata

logger = logging.getLogger(__name__)

WRITE_BATCH = 256
WRITE_INTERVAL_S = 0.2
PROGRESS_LOG_INTERVAL_S = 10.0
IN_FLIGHT_PER_WORKER = 2

_DONE = object()


@dataclass(frozen=True)
class TransferTask:
    """One object to deliver: ``op`` is create, update (content) or refresh (metadata only)."""

    summary: ObjectSummary
    op: str
    record: FileRecord | None


@dataclass(frozen=True)
class TransferOutcome:
    """What a worker did with one task."""

    op: str | None
    synced: SyncedFile | None = None
    failure: OperationFailure | None = None
    skip_reason: str | None = None
    bytes_sent: int = 0


def plan_task(summary: ObjectSummary, record: FileRecord | None) -> TransferTask | None:
    """Decide what an object needs, given its record (None: nothing to do)."""
    if record is None:
        return TransferTask(summary, "create", None)
    if record.etag != summary.etag or record.size != summary.size:
        return TransferTask(summary, "update", record)
    if record.last_modified != summary.last_modified:
        # Same content, newer object: its metadata (and so its permissions) may have changed.
        return TransferTask(summary, "refresh", record)
    return None


def operation_key(run_id: str, op: str, path: str) -> str:
    """An Idempotency-Key that is stable for one operation of one run and safe in a header."""
    digest = hashlib.sha256(path.encode("utf-8")).hexdigest()[:32]
    return f"{run_id}:{op}:{digest}"


class Progress:
    """Counts the run's outcomes and shows them: a bar on a terminal, a log line otherwise."""

    def __init__(self, report: RunReport, *, interactive: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.report = report
        self._clock = clock
        self._started = clock()
        self._last_log = self._started
        self.seen = 0
        self._bar: Any = None
        if interactive if interactive is not None else sys.stderr.isatty():
            from tqdm import tqdm
            self._bar = tqdm(unit="obj", desc="initial sync", dynamic_ncols=True, leave=False)

    def count(self, outcome: TransferOutcome | None, skip_reason: str | None = None) -> None:
        """Count one object's outcome (called from one thread only: the writer)."""
        report = self.report
        self.seen += 1
        if skip_reason:
            report.skip(skip_reason)
        elif outcome is not None and outcome.skip_reason:
            report.skip(outcome.skip_reason)
        elif outcome is not None and outcome.failure:
            report.failed += 1
            report.failures.append(outcome.failure)
        elif outcome is not None and outcome.op:
            report.operations[outcome.op] = report.operations.get(outcome.op, 0) + 1
            report.succeeded += 1
            report.bytes_transferred += outcome.bytes_sent
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(ok=report.succeeded, skipped=report.skipped,
                                  failed=report.failed, refresh=False)
        elif self._clock() - self._last_log >= PROGRESS_LOG_INTERVAL_S:
            self._last_log = self._clock()
            self.log_line()

    def log_line(self) -> None:
        """Log where the run stands."""
        elapsed = max(self._clock() - self._started, 1e-9)
        report = self.report
        logger.info(
            "progress: %d objects seen, %d delivered, %d skipped, %d failed, %.1f MB, %.0f obj/s",
            self.seen, report.succeeded, report.skipped, report.failed,
            report.bytes_transferred / 1e6, self.seen / elapsed)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()


class TransferPipeline:
    """Delivers every object of the bucket that the file manager does not have yet."""

    def __init__(self, s3: S3Manager, api: InfrastructureAPI, db: DatabaseManager, *,
                 run_id: str, workers: int, permissions_key: str,
                 default_permissions: dict[str, object], clock: Clock | None = None) -> None:
        self.s3 = s3
        self.clock = clock or Clock()
        self.api = api
        self.db = db
        self.run_id = run_id
        self.workers = workers
        self.permissions_key = permissions_key
        self.default_permissions = default_permissions
        self._results: queue.Queue[Any] = queue.Queue(maxsize=workers * 4 + WRITE_BATCH)
        self._slots = threading.BoundedSemaphore(workers * IN_FLIGHT_PER_WORKER)

    # -- the stages --------------------------------------------------------------------------

    def run(self, progress: Progress) -> None:
        """Run the whole pipeline; returns when every object is delivered, skipped or failed."""
        writer = threading.Thread(target=self._write_loop, args=(progress,), name="sync-writer")
        writer.start()
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sync-worker")
        interrupted = True
        try:
            for task in self._tasks():
                if self.clock.stopping:
                    break
                self._slots.acquire()
                future = executor.submit(self._transfer, task)
                future.add_done_callback(self._finished)
            interrupted = self.clock.stopping
        finally:
            # On an interruption, queued tasks are dropped; those in flight finish and are saved.
            executor.shutdown(wait=True, cancel_futures=interrupted)
            self._results.put(_DONE)
            writer.join()

    def _tasks(self) -> Iterator[TransferTask]:
        """The lister: yields what needs doing, queues skips for the writer to count."""
        for page in self.s3.iter_pages():
            wanted: list[ObjectSummary] = []
            for summary in page:
                skip = unsyncable(summary.key, summary.path, summary.size)
                if skip is None:
                    wanted.append(summary)
                    continue
                if skip[0] == "invalid_key":
                    logger.warning("skipping key %r: not a valid path, %s", summary.key, skip[1])
                self._results.put(("skip", skip[0]))
            records = self.db.lookup([s.path for s in wanted])
            for summary in wanted:
                task = plan_task(summary, records.get(summary.path))
                if task is None:
                    self._results.put(("skip", "unchanged"))
                else:
                    yield task

    def _finished(self, future: Future[TransferOutcome]) -> None:
        self._slots.release()
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:  # _transfer catches everything; this is a last guard
            self._results.put(TransferOutcome(None, skip_reason=None, failure=OperationFailure(
                "create", "?", f"internal error: {exc!r}")))
            return
        self._results.put(future.result())

    def _write_loop(self, progress: Progress) -> None:
        """The writer: records delivered files and failures in batched transactions."""
        pending: list[SyncedFile] = []
        failures: list[OperationFailure] = []
        last_flush = time.monotonic()
        done = False
        while not done:
            try:
                item = self._results.get(timeout=WRITE_INTERVAL_S)
            except queue.Empty:
                item = None
            if item is _DONE:
                done = True
            elif isinstance(item, tuple):
                progress.count(None, skip_reason=item[1])
            elif isinstance(item, TransferOutcome):
                if item.synced is not None:
                    pending.append(item.synced)
                if item.failure is not None:
                    failures.append(item.failure)
                progress.count(item)
            due = time.monotonic() - last_flush >= WRITE_INTERVAL_S
            if done or len(pending) >= WRITE_BATCH or (due and (pending or failures)):
                try:
                    self.db.save_synced(pending)
                    self.db.record_failures(self.run_id, failures)
                except SyncError:
                    logger.exception("recording %d delivered files failed", len(pending))
                    raise
                pending, failures = [], []
                last_flush = time.monotonic()

    # -- one object --------------------------------------------------------------------------

    def _transfer(self, task: TransferTask) -> TransferOutcome:
        """Deliver one object; never raises."""
        summary = task.summary
        try:
            if task.op == "refresh":
                return self._refresh(task)
            return self._upload(summary, task.op)
        except ObjectGone:
            logger.info("object %r vanished before it could be read; skipped", summary.key)
            return TransferOutcome(None, skip_reason="vanished")
        except SyncError as exc:
            logger.warning("%s %r failed: %s", task.op, summary.path, exc)
            return TransferOutcome(None, failure=OperationFailure(task.op, summary.path, str(exc)))
        except Exception as exc:  # a bug must cost one object, not the run
            logger.exception("%s %r failed unexpectedly", task.op, summary.path)
            return TransferOutcome(None, failure=OperationFailure(
                task.op, summary.path, f"internal error: {exc!r}"))

    def _permissions(self, metadata: dict[str, str], path: str) -> str:
        return permissions_from_metadata(metadata, key=self.permissions_key,
                                         default=self.default_permissions, path=path)

    def _upload(self, summary: ObjectSummary, op: str) -> TransferOutcome:
        meta, saved = deliver_content(self.s3, self.api, summary.path,
                                      key=operation_key(self.run_id, op, summary.path))
        permissions = self._permissions(meta.metadata, summary.path)
        self.api.update_permissions(summary.path, permissions, key=operation_key(
            self.run_id, "permissions", summary.path))
        synced = SyncedFile(summary.path, meta.size, meta.etag, meta.last_modified, permissions)
        return TransferOutcome(op, synced=synced, bytes_sent=saved.size)

    def _refresh(self, task: TransferTask) -> TransferOutcome:
        summary, record = task.summary, task.record
        assert record is not None
        meta = self.s3.head(summary.key)
        if meta.etag != record.etag:
            return self._upload(summary, "update")
        permissions = self._permissions(meta.metadata, summary.path)
        op = None
        if permissions != record.permissions:
            try:
                self.api.update_permissions(summary.path, permissions, key=operation_key(
                    self.run_id, "permissions", summary.path))
            except PermanentApiError as exc:
                if exc.status != 404:
                    raise
                # The file manager lost the file: deliver it again.
                return self._upload(summary, "update")
            op = "update_permissions"
        synced = SyncedFile(summary.path, meta.size, meta.etag, meta.last_modified, permissions)
        return TransferOutcome(op, synced=synced, skip_reason=None if op else "unchanged")
