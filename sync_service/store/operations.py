"""The outbox of planned operations, and the baseline that advances when they succeed.

A planner stores operations as ``pending`` (with whatever else it learnt, in one transaction);
the executor records each outcome. A success moves the baseline (what the file manager is known
to hold) to the operation's new state in the same transaction as its status, and clears the
record's dirty mark once baseline and record agree; a failure leaves both, so the next run
plans the record again. An operation's Idempotency-Key is ``<run id>:<row id>``.

Workers (PostgreSQL) claim pending operations: ``claimed_by`` names the worker, ``lease_until``
(the server's epoch seconds) says until when; a claim whose lease ran out is free again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Container, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sync_service.models.data_models import ORDERED_PHASE, PHASES, FileOperation, StoredOperation
from sync_service.store.database import Database, now_iso
from sync_service.utils.redaction import redact

logger = logging.getLogger(__name__)

_FIELDS = set(FileOperation.__dataclass_fields__)
#: Rows written by one multi-row statement.
WRITE_CHUNK = 500


@dataclass(frozen=True)
class Delivered:
    """What the file manager holds for a record after a content operation succeeded."""

    size: int
    etag: str
    last_modified: str
    permissions: str


@dataclass(frozen=True)
class Outcome:
    """How one stored operation ended: done, failed, or skipped (the object vanished)."""

    stored: StoredOperation
    status: str
    error: str = ""
    delivered: Delivered | None = None
    counted_as: str = ""
    bytes_sent: int = 0

    @property
    def operation(self) -> FileOperation:
        """The operation this is the outcome of."""
        return self.stored.operation


_CLEAN_DIRTY = """
DELETE FROM dirty WHERE id = ? AND (
    (NOT EXISTS (SELECT 1 FROM files WHERE id = dirty.id)
     AND NOT EXISTS (SELECT 1 FROM baseline WHERE id = dirty.id))
    OR EXISTS (SELECT 1 FROM files f JOIN baseline b ON b.id = f.id
               WHERE f.id = dirty.id AND f.path = b.path
                 AND f.content_version = b.content_version AND f.permissions = b.permissions))
"""

# A baseline row replaced whole (SQLite's INSERT OR REPLACE, in the SQL both engines speak).
_REPLACE_BASELINE = (
    "ON CONFLICT (id) DO UPDATE SET path = excluded.path, size = excluded.size, "
    "etag = excluded.etag, last_modified = excluded.last_modified, "
    "permissions = excluded.permissions, content_version = excluded.content_version")

# The executor's phases (deletes, renames and moves, creates and updates, permissions), in SQL.
# The executor's phases (models.data_models.PHASES), in SQL.
_PHASE = "CASE op " + " ".join(f"WHEN '{op}' THEN {n}" for op, n in PHASES.items()) + " END"


#: How the claims of a run (not a worker) on the operations it planned itself are named.
RUN_HOLDER_PREFIX = "run:"
#: A claimer's name and the seconds its claims last.
Holder = tuple[str, float]


class OperationStore:
    """Reads and changes the ``operations`` and ``baseline`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, run_id: str, operations: Iterable[FileOperation]) -> list[StoredOperation]:
        """Store ``operations`` as pending, in order; earlier failures of the same records are
        superseded (this plan retries them). Stored unclaimed: whoever claims first applies
        them. Joins the caller's transaction."""
        planned = list(operations)
        row_ids: dict[int, int] = {}
        with self.db.transaction():
            records = sorted({o.record_id for o in planned})
            for start in range(0, len(records), WRITE_CHUNK):
                ids = records[start:start + WRITE_CHUNK]
                self.db.execute("UPDATE operations SET status = 'superseded', updated_at = ? "
                                f"WHERE status = 'failed' AND record_id IN ({', '.join('?' * len(ids))})",
                                (now_iso(), *ids))
            for start in range(0, len(planned), WRITE_CHUNK):
                chunk = list(enumerate(planned[start:start + WRITE_CHUNK], start=start))
                rows = [(run_id, o.op, o.path, o.new_path or None, seq, o.record_id,
                         json.dumps(asdict(o), ensure_ascii=False)) for seq, o in chunk]
                marks = ", ".join(["(?, ?, ?, ?, 'pending', ?, ?, ?)"] * len(rows))
                for row_id, seq in self.db.query(
                        "INSERT INTO operations (run_id, op, path, new_path, status, seq, record_id, "
                        f"payload) VALUES {marks} RETURNING id, seq", [v for row in rows for v in row]):
                    row_ids[int(seq)] = int(row_id)
            if planned:
                self.db.work_added()
        return [StoredOperation(row_ids[seq], f"{run_id}:{row_ids[seq]}", o)
                for seq, o in enumerate(planned)]

    def pending(self) -> list[StoredOperation]:
        """Every pending operation no worker holds a live claim on, in the order it was planned.

        Claims of runs (``RUN_HOLDER_PREFIX``) do not count: only the holder of the run lock
        asks, so the run that stored them has ended, or died before it could apply them."""
        return [
            StoredOperation(row_id, f"{run_id}:{row_id}", _operation(payload))
            for row_id, run_id, payload in self.db.query(
                "SELECT id, run_id, payload FROM operations WHERE status = 'pending' "
                f"AND (lease_until IS NULL OR lease_until < {self.db.server_now} OR claimed_by LIKE ?) "
                "ORDER BY id", (f"{RUN_HOLDER_PREFIX}%",))
        ]

    def claim(self, worker: str, limit: int, lease_s: float) -> list[StoredOperation]:
        """Claim up to ``limit`` pending operations for ``worker`` for ``lease_s`` seconds
        (PostgreSQL): from the oldest run with pending operations, its earliest phase; rows
        another worker is claiming are skipped, not waited for. Renames and moves are claimed
        whole, by one worker at a time. Empty when nothing is free now."""
        now = self.db.server_now
        head = self.db.query(
            f"SELECT run_id, min({_PHASE}) FROM operations WHERE status = 'pending' AND run_id = "
            "(SELECT run_id FROM operations WHERE status = 'pending' ORDER BY id LIMIT 1) "
            "GROUP BY run_id")
        if not head:
            return []
        run_id, phase = head[0]
        if phase == ORDERED_PHASE:
            # Whole or not at all: the UPDATE takes only rows no live lease holds, and a
            # claimer that waited for another's row locks finds them held once it gets them.
            with self.db.transaction():
                if self.db.query(f"SELECT 1 FROM operations WHERE status = 'pending' AND run_id = ? "
                                 f"AND {_PHASE} = ? AND lease_until >= {now} LIMIT 1",
                                 (run_id, phase)):
                    return []
                rows = self.db.query(
                    f"UPDATE operations SET claimed_by = ?, lease_until = {now} + ? "
                    f"WHERE status = 'pending' AND run_id = ? AND {_PHASE} = ? "
                    f"AND (lease_until IS NULL OR lease_until < {now}) "
                    "RETURNING id, run_id, payload", (worker, lease_s, run_id, phase))
        else:
            rows = self.db.query(
                f"UPDATE operations SET claimed_by = ?, lease_until = {now} + ? WHERE id IN ("
                f"SELECT id FROM operations WHERE status = 'pending' AND run_id = ? AND {_PHASE} = ? "
                f"AND (lease_until IS NULL OR lease_until < {now}) ORDER BY id LIMIT ? "
                f"{self.db.skip_locked}) RETURNING id, run_id, payload",
                (worker, lease_s, run_id, phase, limit))
        return [StoredOperation(row_id, f"{run}:{row_id}", _operation(payload), worker)
                for row_id, run, payload in sorted(rows)]

    def renew(self, holder: str, lease_s: float) -> int:
        """Extend the leases of the pending operations ``holder`` claimed (its heartbeat)."""
        return self.db.execute(f"UPDATE operations SET lease_until = {self.db.server_now} + ? "
                               "WHERE claimed_by = ? AND status = 'pending' AND lease_until IS NOT NULL",
                               (lease_s, holder)).rowcount

    def release(self, worker: str) -> int:
        """Give back the claims ``worker`` still holds on pending operations (it is stopping)."""
        return self._freed(self.db.execute("UPDATE operations SET lease_until = NULL WHERE claimed_by = ? "
                               "AND status = 'pending'", (worker,)).rowcount)

    def release_runs(self) -> int:
        """Give back the claims of runs (``RUN_HOLDER_PREFIX``): only the holder of the run lock
        calls this, so the runs that hold them have ended."""
        return self._freed(self.db.execute("UPDATE operations SET claimed_by = NULL, lease_until = NULL "
                                           "WHERE status = 'pending' AND claimed_by LIKE ?",
                                           (f"{RUN_HOLDER_PREFIX}%",)).rowcount)

    def _freed(self, count: int) -> int:
        """Wake the claimers when ``count`` operations became free to claim."""
        if count:
            self.db.work_added()
        return count

    def record(self, outcomes: list[Outcome]) -> int:
        """Store outcomes in one transaction: status, baseline, record write-back, dirty marks.

        Fenced: an outcome of a claimed operation is stored only while its claimer still holds
        the claim, so a holder whose lease was taken over never writes over the new holder's
        outcome. Returns how many outcomes were refused so."""
        if not outcomes:
            return 0
        now = now_iso()
        fenced = 0
        # In the order of their rows, as every writer takes them: writers never wait in a circle.
        outcomes = sorted(outcomes, key=lambda o: o.stored.row_id)
        with self.db.transaction():
            for outcome in outcomes:
                claimer = outcome.stored.claimed_by
                changed = self.db.execute(
                    "UPDATE operations SET status = ?, error = ?, attempts = attempts + 1, "
                    "updated_at = ?, counted_as = ?, bytes_sent = ? WHERE id = ? AND status = 'pending'"
                    + (" AND claimed_by = ?" if claimer is not None else ""),
                    (outcome.status, redact(outcome.error) or None, now, outcome.counted_as or None,
                     outcome.bytes_sent, outcome.stored.row_id,
                     *((claimer,) if claimer is not None else ()))).rowcount
                if changed != 1:
                    fenced += 1
                    logger.warning("%s %r: outcome not recorded: the claim of %s was taken over "
                                   "(its lease ran out)", outcome.operation.op,
                                   outcome.operation.path, claimer or "this run")
                    continue
                if outcome.status == "done":
                    self._advance(outcome.operation, outcome.delivered)
                elif outcome.status == "skipped":
                    # The object is gone from the bucket: so is its record, unless it changed
                    # since; the dirty mark stays, and the next plan deletes any copy.
                    self.db.execute("DELETE FROM files WHERE id = ? AND content_version = ?",
                                    (outcome.operation.record_id, outcome.operation.content_version))
            self.db.executemany(_CLEAN_DIRTY, [(i,) for i in sorted({o.operation.record_id for o in outcomes})])
            self.db.work_added()  # a phase that ended frees the next one
        return fenced

    def _advance(self, o: FileOperation, delivered: Delivered | None) -> None:
        """Make the baseline (and, for what was learnt on delivery, the record) reflect ``o``."""
        if o.op == "delete":
            self.db.execute("DELETE FROM baseline WHERE id = ?", (o.record_id,))
        elif o.op in ("rename", "move"):
            self.db.execute("UPDATE baseline SET path = ? WHERE id = ?", (o.new_path, o.record_id))
        if delivered is None:
            if o.op == "update_permissions":
                self.db.execute("UPDATE baseline SET permissions = ? WHERE id = ?",
                                (o.permissions, o.record_id))
            return
        values = (delivered.size, delivered.etag, delivered.last_modified, delivered.permissions)
        if o.op == "create":
            self.db.execute(
                "INSERT INTO baseline (id, path, size, etag, last_modified, permissions, "
                f"content_version) VALUES (?, ?, ?, ?, ?, ?, ?) {_REPLACE_BASELINE}",
                (o.record_id, o.target, *values, o.content_version))
        else:  # the path is the business of renames and moves, whatever happened to them
            self.db.execute(
                "UPDATE baseline SET size = ?, etag = ?, last_modified = ?, permissions = ?, "
                "content_version = CASE WHEN content_version > ? THEN content_version ELSE ? END "
                "WHERE id = ?",
                (*values, o.content_version, o.content_version, o.record_id))
        # The record takes what delivery learnt: the object's etag, and permissions not known
        # when it was planned (only if the record has not changed since).
        self.db.execute(
            "UPDATE files SET size = ?, etag = ?, last_modified = ?, permissions = "
            "CASE WHEN permissions = '' THEN ? ELSE permissions END "
            "WHERE id = ? AND content_version = ?",
            (*values, o.record_id, o.content_version))

    def mark_delivered(self, ids: Iterable[int]) -> None:
        """The file manager holds these records exactly: the baseline takes them (seeding)."""
        with self.db.transaction():
            rows = [(i,) for i in ids]
            self.db.executemany(
                "INSERT INTO baseline (id, path, size, etag, last_modified, permissions, "
                "content_version) SELECT id, path, size, etag, last_modified, permissions, "
                f"content_version FROM files WHERE id = ? {_REPLACE_BASELINE}", rows)
            self.db.executemany(_CLEAN_DIRTY, rows)

    def prune_finished(self, before: str) -> int:
        """Forget operations that finished (done, skipped, superseded, abandoned) before
        ``before`` (ISO-8601); pending and failed ones stay, whatever their age."""
        with self.db.transaction():
            return int(self.db.execute(
                "DELETE FROM operations WHERE updated_at < ? AND status IN "
                "('done', 'skipped', 'superseded', 'abandoned')", (before,)).rowcount)

    # -- for status ----------------------------------------------------------------------------

    def backlog(self, limit: int) -> int:
        """Pending operations nobody holds a live claim on, counted up to ``limit`` (a cheap
        "more than ``limit``?"): what workers hold is being applied, not waiting."""
        return int(self.db.query(
            "SELECT count(*) FROM (SELECT 1 FROM operations WHERE status = 'pending' AND "
            f"(lease_until IS NULL OR lease_until < {self.db.server_now}) LIMIT ?) AS p",
            (limit,))[0][0])

    def pending_of(self, run_id: str) -> int:
        """How many of a run's operations are still pending (claimed or not)."""
        return int(self.db.query("SELECT count(*) FROM operations WHERE run_id = ? AND status = 'pending'",
                                 (run_id,))[0][0])

    def finished_of(self, run_id: str, *, exclude: Container[int] = frozenset(),
                    batch: int = 5000) -> Iterator[Outcome]:
        """A run's operations that ended (done, failed, skipped), as their outcomes were
        recorded (what each counts as in a report, the bytes it sent), whoever applied them;
        but those whose row ids are in ``exclude``. Read in batches by id: memory stays flat
        however many operations the run had."""
        last = 0
        while True:
            rows = self.db.query(
                "SELECT id, payload, status, error, counted_as, bytes_sent FROM operations "
                "WHERE run_id = ? AND id > ? AND status IN ('done', 'failed', 'skipped') "
                "ORDER BY id LIMIT ?", (run_id, last, batch))
            if not rows:
                return
            last = rows[-1][0]
            for row_id, payload, status, error, counted_as, bytes_sent in rows:
                if row_id not in exclude:  # skipped before its payload is parsed
                    yield Outcome(StoredOperation(row_id, f"{run_id}:{row_id}", _operation(payload)),
                                  status, error or "", counted_as=counted_as or "",
                                  bytes_sent=int(bytes_sent or 0))

    def counts(self) -> dict[str, int]:
        """How many operations are pending and failed."""
        counts = {"pending": 0, "failed": 0}
        for status, count in self.db.query(
                "SELECT status, count(*) FROM operations WHERE status IN ('pending', 'failed') "
                "GROUP BY status"):
            counts[status] = count
        return counts

    def oldest_failure(self) -> str | None:
        """When the longest-failing record's operations were first planned (ISO-8601): each retry
        supersedes the failure before it, so the chain since the record's last success counts."""
        rows = self.db.query(
            "SELECT min(o.created_at) FROM operations o WHERE o.status IN ('failed', 'superseded') "
            "AND EXISTS (SELECT 1 FROM operations f WHERE f.record_id = o.record_id AND f.status = 'failed') "
            "AND o.id > COALESCE((SELECT max(d.id) FROM operations d WHERE d.record_id = o.record_id "
            "AND d.status = 'done'), 0)")
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def failed(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest failed operations."""
        rows = self.db.query(
            "SELECT run_id, op, path, error, updated_at FROM operations WHERE status = 'failed' "
            "ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(zip(("run_id", "op", "path", "error", "at"), row, strict=True)) for row in rows]


def _operation(payload: str) -> FileOperation:
    values = json.loads(payload)
    return FileOperation(**{k: v for k, v in values.items() if k in _FIELDS})
