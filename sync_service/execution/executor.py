"""The executor: the only code that talks to the file manager (SPEC §1, §3).

It applies stored operations, whichever planner stored them, and records each outcome through
the operation store in batches, written by a thread of their own (one at a time, in order), so
a slow write or a busy database never stalls the transfers in flight. It is asyncio end to
end: at most 2 × ``workers`` operations in flight, each a coroutine making its GET (through the storage interface's
``ObjectSession``) and its file-manager calls (aiohttp, ``FileManagerSession``) over one
connection pool each, the body streamed from one to the other. uvloop runs the loop where it
is installed.

Per operation, one Idempotency-Key (``<run id>:<row id>``); the calls of one operation use it
with a suffix each; a fresh key only where SPEC §3 asks for one (an integrity retry, the
fallbacks below). The executor acts on the error classes the clients raise:

* ``NotFoundError`` on ``updatePermissions``: the file manager lost the file; upload it again,
  then set its permissions;
* ``NotFoundError`` on ``moveFile``: the source is not there (a move done before a crash, or a
  lost file); deliver the record's content to the target from the bucket;
* ``ConflictError`` on ``moveFile``: the target is taken; upload the content there (replacing
  it), then delete the source; counted as an ``update``;
* ``ObjectGone``: the object left the bucket; skipped (the record goes, the next plan deletes
  any copy); any other ``SyncError`` fails that one operation, kept for the next run.

Plans apply in phases (deletes, then renames and moves in the planner's order, in waves of
moves that touch no common path, then creates and updates, then permission changes); an
operation whose target is still held by a failed delete or move is not attempted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from functools import partial
from itertools import groupby
from typing import Any, TypeVar

from sync_service.clients.infrastructure_api import FileManagerSession, InfrastructureAPI
from sync_service.clients.ranged_reads import RangedGets
from sync_service.clients.storage.base import ObjectMeta, ObjectSession, ObjectStore
from sync_service.errors import ConflictError, DatabaseUnavailable, NotFoundError, ObjectGone, SyncError
from sync_service.execution.delivery import deliver_content
from sync_service.models.data_models import (
    ORDERED_PHASE,
    PHASES,
    FileOperation,
    OperationFailure,
    RunReport,
    StoredOperation,
)
from sync_service.store.database_manager import DatabaseManager
from sync_service.store.operations import Delivered, Holder, Outcome
from sync_service.store.outage import OutageWatch
from sync_service.utils.aio import fewer_collections, loop_factory
from sync_service.utils.clock import Clock
from sync_service.utils.idset import IdSet
from sync_service.utils.permissions import permissions_from_metadata

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

FLUSH_EVERY = 256
FLUSH_INTERVAL_S = 0.5
IN_FLIGHT_PER_WORKER = 2


class Executor:
    """Applies stored operations and records their outcomes."""

    def __init__(self, s3: ObjectStore, api: InfrastructureAPI, db: DatabaseManager, *,
                 workers: int, permissions_key: str, default_permissions: dict[str, object],
                 clock: Clock | None = None, on_progress: Callable[[], None] | None = None,
                 outage: OutageWatch | None = None, ranged: RangedGets | None = None) -> None:
        self.s3 = s3
        self.ranged = ranged  # large objects in ranged windows (None: one GET each)
        self.api = api
        self.db = db
        self.workers = max(1, workers)
        self.permissions_key = permissions_key
        self.default_permissions = default_permissions
        self.clock = clock or Clock()
        self.on_progress = on_progress
        self.outage = outage or OutageWatch(db.location, give_up_after_s=0, clock=self.clock)
        # One bit an id (a run of a million operations, a worker that lives for days).
        self.attempted = IdSet()  # record ids tried by this executor
        self.counted_rows = IdSet()  # row ids counted in the run's report (claimed here, or others')
        self._blocked: set[str] = set()
        self._unflushed: list[Outcome] = []
        self._last_flush = time.monotonic()
        self._writes: list[asyncio.Future[int]] = []
        self._writer: ThreadPoolExecutor | None = None
        self._runner: asyncio.Runner | None = None
        self._sessions: AsyncExitStack | None = None
        self._s3: ObjectSession
        self._fm: FileManagerSession

    # -- entry points (blocking) ---------------------------------------------------------------

    def apply_claimed(self, holder: Holder, report: RunReport, *, batch: int,
                      finished: Callable[[], bool], poll_s: float, log_claims: bool = False) -> None:
        """Claim pending operations in ``holder``'s name and apply them as one continuous
        stream, until stopped, or until ``finished()`` says so at a moment nothing is free to
        claim and nothing is in flight. Their outcomes are counted in ``report`` as they come,
        and their row ids join ``counted_rows``."""
        self._run(self._claiming(holder, report, batch=batch, finished=finished,
                                        poll_s=poll_s, log_claims=log_claims))

    def close(self) -> None:
        """Close the connection pools and the event loop (the executor's last act)."""
        if self._runner is None:
            return
        try:
            if self._sessions is not None:
                self._runner.run(self._sessions.aclose())
        finally:
            self._sessions = None
            self._runner.close()
            self._runner = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the asyncio core ----------------------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the executor's one event loop (uvloop's where installed), with its
        one connection pool to S3 and one to the file manager, both made on first use and
        kept until ``close``: every batch reuses them."""
        if self._runner is None:
            self._runner = asyncio.Runner(loop_factory=loop_factory())
        with fewer_collections():
            return self._runner.run(self._connected(work))

    async def _connected(self, work: Coroutine[Any, Any, T]) -> T:
        if self._sessions is None:
            sessions = AsyncExitStack()
            self._s3 = await sessions.enter_async_context(self.s3.connect())
            self._fm = await sessions.enter_async_context(self.api.connect())
            self._sessions = sessions
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="record")
        try:
            return await work
        finally:
            self._flush()
            try:
                await self._written()
            finally:
                self._writer.shutdown()
                self._writer = None

    async def _claiming(self, holder: Holder, report: RunReport, *, batch: int,
                        finished: Callable[[], bool], poll_s: float, log_claims: bool) -> None:
        """The claim loop: claims (on a thread of their own) keep ``2 × workers`` operations in
        flight and as many again queued behind them, refilled once the queue is empty, no
        batch waiting for its slowest member. A claim is empty while
        the phase in flight is not done (the next one waits for it), while others hold the
        rest, or when nothing is pending: then the outcomes so far are written, and the loop
        waits for one in flight to end, or asks ``finished()``, or waits ``poll_s``. Renames
        and moves are claimed whole and applied in their waves before anything else starts.
        The database going away is waited out; then the claims not applied are given back."""
        name, lease = holder
        loop = asyncio.get_running_loop()
        capacity = self.workers * IN_FLIGHT_PER_WORKER
        slots = asyncio.Semaphore(capacity)
        running: set[asyncio.Task[None]] = set()
        wakeup = self.db.database.wakeups.subscribe()
        with ThreadPoolExecutor(1, thread_name_prefix="claim") as claims:
            async def in_thread(call: Callable[[], R]) -> R:
                return await loop.run_in_executor(claims, call)
            try:
                while not self._stopping:
                    # Refill in batches once the queue behind the slots has drained: a claim per
                    # completed operation would cost the database a query per operation.
                    if len(running) > capacity:
                        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                        continue
                    room = capacity * 2 - len(running)
                    try:
                        claimed = await in_thread(partial(self.db.operations.claim, name, min(batch, room), lease))
                        if not claimed:
                            if running:  # the phase in flight ends when it is done and recorded
                                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                            if running or self._unflushed or self._writes:
                                self._flush()
                                await self._written()
                                continue  # what was recorded may free the next phase: claim again
                            if await in_thread(finished):
                                break
                            # Until work is added here or on another machine, or poll_s passes.
                            await in_thread(partial(wakeup.wait, poll_s, lambda: self.clock.stopping))
                            continue
                    except DatabaseUnavailable as exc:
                        if self.clock.stopping:
                            break  # the claims not applied go back when their lease runs out
                        await in_thread(partial(self.outage.wait, exc))
                        await in_thread(partial(self.outage.run, partial(self.db.operations.release, name)))
                        continue
                    self.outage.ended()
                    if log_claims:
                        logger.info("%s: claimed %d operations (from %s)", name, len(claimed), claimed[0].key)
                    self.counted_rows.update(s.row_id for s in claimed)
                    if PHASES[claimed[0].operation.op] == ORDERED_PHASE:
                        if running:
                            await asyncio.gather(*running)
                        await self._apply_plan(claimed, report, slots)
                        continue
                    for item in claimed:
                        await slots.acquire()
                        task = asyncio.create_task(self._one(item, report, slots))
                        running.add(task)
                        task.add_done_callback(running.discard)
            finally:
                wakeup.close()
                if running:
                    await asyncio.gather(*running)

    @property
    def _stopping(self) -> bool:
        """Start nothing new: stop is asked for, or a write of outcomes failed (the database is
        gone past what the outage watch waits for), so what follows could not be recorded."""
        return self.clock.stopping or any(
            w.done() and not w.cancelled() and w.exception() is not None for w in self._writes)

    async def _apply_plan(self, stored: list[StoredOperation], report: RunReport,
                          slots: asyncio.Semaphore | None = None) -> None:
        slots = slots or asyncio.Semaphore(self.workers * IN_FLIGHT_PER_WORKER)
        # Plans of several runs (left pending by interrupted ones) apply one after another.
        for _, of_run in groupby(stored, key=lambda s: s.key.rsplit(":", 1)[0]):
            by_phase = sorted(of_run, key=lambda s: (PHASES[s.operation.op], s.row_id))
            for phase, group in groupby(by_phase, key=lambda s: PHASES[s.operation.op]):
                if self._stopping:
                    break  # what is not done stays pending for the next run
                if phase == ORDERED_PHASE:
                    for wave in waves(group):
                        if self._stopping:
                            break
                        await self._concurrently(slots, iter(wave), report)
                else:
                    await self._concurrently(slots, group, report)
                self._flush()

    async def _concurrently(self, slots: asyncio.Semaphore, group: Iterator[StoredOperation],
                            report: RunReport) -> None:
        tasks = []
        for item in group:
            if self._stopping:
                break
            await slots.acquire()
            tasks.append(asyncio.create_task(self._one(item, report, slots)))
        await asyncio.gather(*tasks)

    async def _one(self, item: StoredOperation, report: RunReport,
                   slots: asyncio.Semaphore | None = None) -> None:
        try:
            outcome = await self._attempt(item)
        finally:
            if slots is not None:
                slots.release()
        self.count(outcome, report)
        self._unflushed.append(outcome)
        if (len(self._unflushed) >= FLUSH_EVERY
                or time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S):
            self._flush()
        if self.on_progress is not None:
            self.on_progress()

    # -- counting (the event loop's thread) and recording (the writer's) -------------------------

    def count(self, outcome: Outcome, report: RunReport) -> None:
        """Count an outcome in ``report`` (and remember what it means for this run's later
        operations: a path whose delete or move failed is not written)."""
        operation = outcome.operation
        self.attempted.add(operation.record_id)
        if outcome.status not in ("done", "skipped") and operation.op in ("delete", "rename", "move"):
            self._blocked.add(operation.path)
        count_outcome(outcome, report)
        if outcome.status not in ("done", "skipped"):
            logger.warning("%s %r failed: %s", operation.op, operation.path, outcome.error)

    def _flush(self) -> None:
        """Hand the outcomes gathered so far to the writer thread (the loop goes on)."""
        outcomes, self._unflushed = self._unflushed, []
        self._last_flush = time.monotonic()
        if outcomes and self._writer is not None:
            loop = asyncio.get_running_loop()
            # Writes that went through are forgotten; a failed one is kept for _written to raise.
            self._writes = [w for w in self._writes if not w.done() or w.exception() is not None]
            self._writes.append(loop.run_in_executor(self._writer, self._record, outcomes))

    def _record(self, outcomes: list[Outcome]) -> int:
        """Store outcomes (the writer thread), waiting out the database going away: a write
        whose commit was lost with the connection is harmless to repeat, outcomes are fenced."""
        return self.outage.run(lambda: self.db.operations.record(outcomes))

    async def _written(self) -> None:
        """Wait until every outcome handed to the writer is stored; raise what a write raised."""
        writes, self._writes = self._writes, []
        for result in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    # -- one operation (a coroutine) ---------------------------------------------------------------

    async def _attempt(self, item: StoredOperation) -> Outcome:
        """Run one operation; never raises."""
        operation = item.operation
        if operation.target in self._blocked and operation.op != "delete":
            return Outcome(item, "failed", f"not attempted: {operation.target!r} still holds a "
                                           "file whose delete or move failed")
        try:
            return await self._call(item)
        except ObjectGone:
            return Outcome(item, "skipped", "the object is no longer in the bucket")
        except SyncError as exc:
            return Outcome(item, "failed", str(exc))
        except Exception as exc:  # a bug must cost one operation, not the run
            logger.exception("%s %r failed unexpectedly", operation.op, operation.path)
            return Outcome(item, "failed", f"internal error: {exc!r}")

    async def _call(self, item: StoredOperation) -> Outcome:
        o, key = item.operation, item.key
        if o.op == "delete":
            await self._fm.delete_file(o.path, key=key)
            return Outcome(item, "done")
        if o.op in ("rename", "move"):
            return await self._move(item)
        if o.op == "create":
            delivered, sent = await self._deliver(o, o.path, key, set_permissions=True)
            return Outcome(item, "done", delivered=delivered, bytes_sent=sent)
        if o.op == "update":
            delivered, sent = await self._deliver(o, o.path, key, set_permissions=not o.permissions)
            return Outcome(item, "done", delivered=delivered, bytes_sent=sent)
        if not o.permissions:
            return await self._refresh(item)
        try:
            await self._fm.update_permissions(o.path, o.permissions, key=key)
        except NotFoundError:
            logger.info("%r is not in the file manager: uploading it again", o.path)
            delivered, sent = await self._deliver(o, o.path, f"{key}:reupload", set_permissions=True)
            return Outcome(item, "done", delivered=delivered, bytes_sent=sent)
        return Outcome(item, "done")

    async def _move(self, item: StoredOperation) -> Outcome:
        o, key = item.operation, item.key
        try:
            await self._fm.move_file(o.path, o.new_path, key=key)
            return Outcome(item, "done")
        except NotFoundError:
            logger.info("%s %r: source not in the file manager; delivering %r from the bucket",
                        o.op, o.path, o.new_path)
            delivered, sent = await self._deliver(o, o.new_path, f"{key}:redeliver", set_permissions=True)
            return Outcome(item, "done", delivered=delivered, bytes_sent=sent)
        except ConflictError:
            logger.info("%s %r: %r is taken; replacing it with the content, then deleting the "
                        "source", o.op, o.path, o.new_path)
            delivered, sent = await self._deliver(o, o.new_path, f"{key}:replace", set_permissions=True)
            await self._fm.delete_file(o.path, key=f"{key}:delete-source")
            return Outcome(item, "done", delivered=delivered, bytes_sent=sent,
                           counted_as="update" if not o.temp else "")

    async def _refresh(self, item: StoredOperation) -> Outcome:
        """Permissions not known when planned: read them with a HEAD, set them if they changed
        (and deliver the content if it changed too)."""
        o, key = item.operation, item.key
        meta = await self._s3.head(self.s3.key_of(o.source))
        if meta.etag != o.etag:
            delivered, sent = await self._deliver(o, o.path, key, set_permissions=True)
            return Outcome(item, "done", delivered=delivered, bytes_sent=sent, counted_as="update")
        permissions = self._permissions_of(meta, o.path)
        counted = "unchanged"
        if permissions != o.old_permissions:
            await self._fm.update_permissions(o.path, permissions, key=key)
            counted = "update_permissions"
        return Outcome(item, "done", delivered=_delivered(meta, permissions), counted_as=counted)

    async def _deliver(self, o: FileOperation, target: str, key: str, *,
                 set_permissions: bool) -> tuple[Delivered, int]:
        """Stream the record's object to ``target``; with ``set_permissions``, then set the
        permissions (the operation's, or the object's own when not known) where they differ
        from what the file manager holds, or always for a new file."""
        meta, saved = await deliver_content(self._s3, self._fm, self.s3.key_of(o.source), target,
                                            idempotency_key=key, ranged=self.ranged,
                                            size_hint=o.size if o.etag else None)
        held = o.old_permissions
        if set_permissions:
            permissions = o.permissions or self._permissions_of(meta, target)
            if o.op != "update" or permissions != o.old_permissions:
                await self._fm.update_permissions(target, permissions, key=f"{key}:permissions")
            held = permissions
        return _delivered(meta, held), saved.size

    def _permissions_of(self, meta: ObjectMeta, path: str) -> str:
        return permissions_from_metadata(meta.metadata, key=self.permissions_key,
                                         default=self.default_permissions, path=path)


def count_outcome(outcome: Outcome, report: RunReport) -> None:
    """Count one stored outcome in a report: what it counts as, its bytes, or its failure."""
    operation = outcome.operation
    if outcome.status == "done":
        kind = outcome.counted_as or operation.op
        if kind == "unchanged":
            report.skip("unchanged")
        elif not operation.temp:
            report.operations[kind] = report.operations.get(kind, 0) + 1
            report.succeeded += 1
        report.bytes_transferred += outcome.bytes_sent
    elif outcome.status == "skipped":
        report.skip("vanished")
    else:
        report.failed += 1
        report.failures.append(OperationFailure(operation.op, operation.path, outcome.error))


def waves(moves: Iterable[StoredOperation]) -> Iterator[list[StoredOperation]]:
    """Renames and moves, in the planner's order, cut into waves whose members touch no path
    another member touches: a wave runs concurrently, the waves one after another, so a move
    into a path another move frees still waits for it."""
    wave: list[StoredOperation] = []
    paths: set[str] = set()
    for item in moves:
        o = item.operation
        if o.path in paths or o.new_path in paths:
            yield wave
            wave, paths = [], set()
        wave.append(item)
        paths |= {o.path, o.new_path}
    if wave:
        yield wave


def _delivered(meta: ObjectMeta, permissions: str) -> Delivered:
    return Delivered(meta.size, meta.etag, meta.last_modified, permissions)
