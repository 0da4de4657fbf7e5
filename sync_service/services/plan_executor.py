"""Applying a plan through the file-manager API, advancing the baseline one success at a time.

The plan is stored in ``operations`` (status ``pending``) before anything runs. Each operation
that succeeds updates its status and the baseline row of its record in one transaction, so
after a crash the next diff (baseline vs records) contains exactly what is left to do.
Deletes, creates/updates and permission changes run concurrently; renames and moves run one
by one, in the planner's order. An operation whose path is still held by a failed delete or
move is not attempted (it would overwrite a file the baseline still places there).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass

from sync_service.clients.infrastructure_api import InfrastructureAPI
from sync_service.clients.s3_manager import S3Manager
from sync_service.errors import ObjectGone, PermanentApiError, SyncError
from sync_service.models.data_models import FileOperation, OperationFailure, RunReport
from sync_service.services.database_manager import DatabaseManager
from sync_service.services.delivery import deliver_content
from sync_service.utils.clock import Clock

logger = logging.getLogger(__name__)

FLUSH_EVERY = 200


@dataclass(frozen=True)
class _Outcome:
    row_id: int
    operation: FileOperation
    status: str  # done | failed | skipped
    error: str = ""
    bytes_sent: int = 0


def _baseline_effect(operation: FileOperation) -> tuple[str, tuple[object, ...]]:
    """The SQL that makes the baseline reflect a successful operation."""
    o = operation
    if o.op == "delete":
        return "DELETE FROM baseline WHERE id = ?", (o.record_id,)
    if o.op in ("rename", "move"):
        return "UPDATE baseline SET path = ? WHERE id = ?", (o.new_path, o.record_id)
    if o.op == "update_permissions":
        return "UPDATE baseline SET permissions = ? WHERE id = ?", (o.permissions, o.record_id)
    if o.op == "update":
        return ("UPDATE baseline SET size = ?, etag = ?, last_modified = ?, content_version = ? "
                "WHERE id = ?", (o.size, o.etag, o.last_modified, o.content_version, o.record_id))
    return ("INSERT OR REPLACE INTO baseline (id, path, size, etag, last_modified, permissions, "
            "content_version) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (o.record_id, o.path, o.size, o.etag, o.last_modified, o.permissions,
             o.content_version))


class PlanExecutor:
    """Runs one plan."""

    def __init__(self, s3: S3Manager, api: InfrastructureAPI, db: DatabaseManager, *,
                 run_id: str, workers: int, clock: Clock | None = None) -> None:
        self.s3 = s3
        self.api = api
        self.db = db
        self.run_id = run_id
        self.workers = workers
        self.clock = clock or Clock()
        self._final_paths: dict[int, str] = {}
        self._blocked: set[str] = set()
        self._unflushed: list[_Outcome] = []

    def store(self, plan: list[FileOperation]) -> list[int]:
        """Store the plan as pending operations before anything runs; returns their row ids."""
        with self.db.transaction() as conn:
            # Earlier plans' leftovers are planned again by this diff (the baseline did not move).
            conn.execute("UPDATE operations SET status = 'abandoned' WHERE status = 'pending'")
            conn.execute("UPDATE operations SET status = 'superseded' "
                         "WHERE status = 'failed' AND record_id IS NOT NULL")
            ids = []
            for seq, operation in enumerate(plan):
                cursor = conn.execute(
                    "INSERT INTO operations (run_id, op, path, new_path, status, seq, record_id, "
                    "payload) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                    (self.run_id, operation.op, operation.path, operation.new_path or None, seq,
                     operation.record_id, json.dumps(asdict(operation), ensure_ascii=False)))
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def apply(self, plan: list[FileOperation], row_ids: list[int], report: RunReport) -> None:
        """Apply the stored plan, recording each outcome and counting it in ``report``."""
        self._final_paths = {o.record_id: o.target for o in plan if not o.temp}
        steps = list(zip(row_ids, plan, strict=True))
        for kinds, concurrent in ((("delete",), True), (("rename", "move"), False),
                                  (("create", "update"), True), (("update_permissions",), True)):
            if self.clock.stopping:
                break  # what is not done stays pending; the next run plans it again
            phase = [(row_id, o) for row_id, o in steps if o.op in kinds]
            if concurrent:
                self._run_concurrently(phase, report)
            else:
                for row_id, operation in phase:
                    if self.clock.stopping:
                        break
                    self._record(self._attempt(row_id, operation), report)
                    self._flush()
            self._flush()

    # -- running -----------------------------------------------------------------------------

    def _run_concurrently(self, phase: list[tuple[int, FileOperation]], report: RunReport) -> None:
        if not phase:
            return
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="apply") as pool:
            futures = [pool.submit(self._attempt, row_id, o) for row_id, o in phase]
            for future in as_completed(futures):
                if self.clock.stopping:
                    for waiting in futures:
                        waiting.cancel()  # those in flight still finish and are recorded
                if future.cancelled():
                    continue
                self._record(future.result(), report)
                if len(self._unflushed) >= FLUSH_EVERY:
                    self._flush()

    def _attempt(self, row_id: int, operation: FileOperation) -> _Outcome:
        """Run one operation; never raises."""
        if operation.target in self._blocked and operation.op != "delete":
            return _Outcome(row_id, operation, "failed",
                            f"not attempted: {operation.target!r} still holds a file whose "
                            "delete or move failed")
        try:
            sent = self._call(row_id, operation)
        except ObjectGone:
            return _Outcome(row_id, operation, "skipped",
                            "the object is no longer in the bucket; a delete event will follow")
        except SyncError as exc:
            return _Outcome(row_id, operation, "failed", str(exc))
        except Exception as exc:  # a bug must cost one operation, not the run
            logger.exception("%s %r failed unexpectedly", operation.op, operation.path)
            return _Outcome(row_id, operation, "failed", f"internal error: {exc!r}")
        return _Outcome(row_id, operation, "done", bytes_sent=sent)

    def _call(self, row_id: int, o: FileOperation) -> int:
        """Make the API calls of one operation; returns the bytes of content sent."""
        key = f"{self.run_id}:{row_id}"
        if o.op == "delete":
            self.api.delete_file(o.path, key=key)
        elif o.op in ("rename", "move"):
            try:
                self.api.move_file(o.path, o.new_path, key=key)
            except PermanentApiError as exc:
                if exc.status != 404:
                    raise
                return self._redeliver(o, key)
        elif o.op in ("create", "update"):
            _, saved = deliver_content(self.s3, self.api, o.path, key=key)
            if o.op == "create":
                self.api.update_permissions(o.path, o.permissions, key=f"{key}:permissions")
            return saved.size
        elif o.op == "update_permissions":
            self.api.update_permissions(o.path, o.permissions, key=key)
        return 0

    def _redeliver(self, o: FileOperation, key: str) -> int:
        """The source of a move is not in the file manager (a move already done before a crash,
        or a file lost there): put the record's content at the target from the bucket instead."""
        logger.info("%s %r: source missing in the file manager; delivering %r from the bucket",
                    o.op, o.path, o.new_path)
        _, saved = deliver_content(self.s3, self.api, self._final_paths.get(o.record_id, o.new_path),
                                   target=o.new_path, key=f"{key}:redeliver")
        row = self.db.conn.execute("SELECT permissions FROM baseline WHERE id = ?",
                                   (o.record_id,)).fetchone()
        if row is not None:
            self.api.update_permissions(o.new_path, row[0], key=f"{key}:permissions")
        return saved.size

    # -- recording ---------------------------------------------------------------------------

    def _record(self, outcome: _Outcome, report: RunReport) -> None:
        operation = outcome.operation
        if outcome.status == "done":
            if not operation.temp:
                report.operations[operation.op] = report.operations.get(operation.op, 0) + 1
                report.succeeded += 1
            report.bytes_transferred += outcome.bytes_sent
        elif outcome.status == "skipped":
            report.skip("vanished")
        else:
            if operation.op in ("delete", "rename", "move"):
                self._blocked.add(operation.path)
            report.failed += 1
            report.failures.append(OperationFailure(operation.op, operation.path, outcome.error))
            logger.warning("%s %r failed: %s", operation.op, operation.path, outcome.error)
        self._unflushed.append(outcome)

    def _flush(self) -> None:
        if not self._unflushed:
            return
        with self.db.transaction() as conn:
            for outcome in self._unflushed:
                conn.execute(
                    "UPDATE operations SET status = ?, error = ?, attempts = attempts + 1, "
                    "updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?",
                    (outcome.status, outcome.error or None, outcome.row_id))
                if outcome.status == "done":
                    conn.execute(*_baseline_effect(outcome.operation))
        self._unflushed = []
