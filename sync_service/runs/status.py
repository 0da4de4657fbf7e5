"""What ``status``, ``/api/status`` and the status page show: records, runs, operations, the
event source, the initial sync's key ranges, held deletes, and live checks of the bucket (S3,
GCS or Azure), the API and the database, each with its latency; secrets redacted."""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from sync_service.clients.infrastructure_api import InfrastructureAPI
from sync_service.clients.storage.base import ObjectStore
from sync_service.errors import SyncError
from sync_service.models.config import SyncConfig
from sync_service.store.database_manager import DatabaseManager
from sync_service.store.run_lock import RunLock
from sync_service.utils.redaction import mask_url, redact_value

#: How many runs and dead letters the status lists.
RECENT_SHOWN = 20


class StatusSubject(Protocol):
    """What the status is read from: the parts a ``SyncService`` composes, and what it knows
    of its runs and its event source."""

    @property
    def config(self) -> SyncConfig: ...
    @property
    def db(self) -> DatabaseManager: ...
    @property
    def lock(self) -> RunLock: ...
    @property
    def s3(self) -> ObjectStore: ...
    @property
    def api(self) -> InfrastructureAPI: ...

    def initial_sync_completed(self) -> bool:
        """Whether an initial sync has completed."""
        ...

    def last_reconcile_at(self) -> str | None:
        """When the last reconcile started (ISO-8601)."""
        ...

    def held_deletes(self) -> dict[str, Any] | None:
        """The deletes the last reconcile held back, if any."""
        ...

    def describe_source(self) -> dict[str, Any]:
        """Where events come from and what waits there."""
        ...


class StatusReader:
    """Reads the status of a service's database and asks the servers it talks to."""

    def __init__(self, service: StatusSubject) -> None:
        self.service = service

    def read(self, *, live: bool = True) -> dict[str, Any]:
        """Records, last runs, operations, event position, dead letters and live checks."""
        last_runs = {}
        for mode, run in self.service.db.last_runs().items():
            report = run.pop("report") or {}
            if run["status"] == "running" and not self.service.lock.is_held_elsewhere():
                run["status"] = "interrupted"
            run.update({k: report.get(k) for k in ("duration_s", "succeeded", "failed", "skipped",
                                                   "cycles", "event_lag_s")})
            last_runs[mode] = run
        status: dict[str, Any] = {
            "records": self.service.db.get_record_count(),
            "last_runs": last_runs,
            "operations": self.service.db.operation_counts(),
            "recent_failures": self.service.db.failed_operations(limit=10),
            "oldest_failure_at": self.service.db.operations.oldest_failure(),
            "initial_sync": self._initial_sync_state(),
            "event_position": self.service.db.get_setting("event_position"),
            "event_source": {"source": self.service.config.event_source},
            # The last report window's (or the last incremental run's) lags, event to success.
            "event_lag_s": (last_runs.get("incremental-sync") or {}).get("event_lag_s") or {},
            "dead_letters": self.service.db.dead_letter_count(),
            "reconcile": {"interval_s": self.service.config.reconcile_interval,
                          "last_at": self.service.last_reconcile_at() if "reconcile" in last_runs else None,
                          "held_deletes": self.service.held_deletes()},
            "recent_runs": self.recent_runs(),
            "recent_dead_letters": [{**letter, "raw": _shortened(letter["raw"])}
                                    for letter in self.service.db.recent_dead_letters(RECENT_SHOWN)],
            "sync_running": self.service.lock.is_held_elsewhere(),
            "database": self.service.config.database_shown,
            "bucket": self.service.config.customer_s3_bucket,
            "prefix": self.service.config.customer_s3_prefix,
            "api": mask_url(self.service.config.api_base_url),
        }
        if live:
            status.update(self.live())
        return redact_value(status)

    def live(self) -> dict[str, Any]:
        """The part of the status that asks other servers: the event source, the bucket (its
        check named by the store: ``s3``, ``gcs`` or ``azure``), the API, and the database, each
        with its latency."""
        return redact_value({
            "event_source": self.service.describe_source(),
            "checks": {
                self.service.config.source_store: _timed_check(lambda: self.service.s3.check()),
                "api": _timed_check(self.service.api.health),
                "database": _timed_check(self.service.db.check),
            },
        })

    def recent_runs(self, limit: int = RECENT_SHOWN) -> list[dict[str, Any]]:
        """The newest runs of every mode, newest first, each with the numbers of its report."""
        runs = []
        for run in self.service.db.recent_runs(limit):
            report = run.pop("report") or {}
            if run["status"] == "running" and not self.service.lock.is_held_elsewhere():
                run["status"] = "interrupted"
            run.update({k: report.get(k) for k in (
                "duration_s", "succeeded", "failed", "skipped", "events_applied", "events_rejected")})
            run["operations"] = sum((report.get("operations") or {}).values()) if report else None
            runs.append(run)
        return runs

    def _initial_sync_state(self) -> dict[str, Any]:
        return {"completed": self.service.initial_sync_completed(), "key_ranges": self.service.db.ranges.counts()}


def status_json(status: dict[str, Any]) -> str:
    """The status as ``status --json`` prints it."""
    return json.dumps(status, indent=2, ensure_ascii=False)


def lag_summary(lag: dict[str, Any] | None) -> str:
    """A window's event lag in words: ``p50 0.6s, p99 0.9s (120 events)``."""
    if not lag:
        return "none measured yet"
    return f"p50 {lag['p50']}s, p99 {lag['p99']}s, max {lag['max']}s ({lag['count']} events)"


def initial_sync_summary(state: dict[str, Any]) -> str:
    """Where the initial sync stands, in one line (``status`` and the page): its key ranges
    while a listing is unfinished (running, or interrupted and continued by the next initial
    sync), else completed or not done yet."""
    ranges = state.get("key_ranges") or {}
    if ranges.get("left"):
        return (f"listing in key ranges: {ranges['listed']} of {ranges['listed'] + ranges['left']} "
                f"listed" + ("; completed before" if state["completed"] else ""))
    if state["completed"]:
        return "completed"
    return "not done yet"


def _shortened(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _timed_check(check: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        check()
    except SyncError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1)}
