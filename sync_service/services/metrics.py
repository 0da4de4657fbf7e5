"""What the daemon exposes: Prometheus metrics and a health verdict."""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sync_service.models.data_models import RunReport
from sync_service.utils.redaction import redact, redact_value

OVERDUE_GRACE_S = 60.0


class SyncMetrics:
    """Counters of cycles, operations and events, and the last cycle's outcome."""

    def __init__(self, interval_s: float, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.interval_s = interval_s
        self.cycles = Counter("sync_cycles", "Sync cycles run, by mode and result",
                              ["mode", "result"], registry=self.registry)
        self.operations = Counter("sync_operations", "File-manager operations, by kind and result",
                                  ["kind", "result"], registry=self.registry)
        self.events = Counter("sync_events", "Events replayed, by result", ["result"],
                              registry=self.registry)
        self.records = Gauge("sync_records", "File records in SQLite", registry=self.registry)
        self.last_success = Gauge("sync_last_success_timestamp_seconds",
                                  "Unix time the last cycle succeeded", registry=self.registry)
        self.duration = Histogram("sync_cycle_duration_seconds", "Duration of sync cycles",
                                  ["mode"], registry=self.registry,
                                  buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
        self.held = Gauge("sync_reconcile_held_deletes",
                          "Deletes the last reconcile held back (over the delete guard)",
                          registry=self.registry)
        self._held_deletes: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._started = time.time()
        self._last_finished: float | None = None
        self._last_result: str | None = None
        self._last_error: str | None = None
        self._next_cycle_at: float | None = None

    def observe_run(self, report: RunReport, status: str) -> None:
        """Count one finished run (the SyncService's ``on_finish`` hook)."""
        self.cycles.labels(report.mode, status).inc()
        self.duration.labels(report.mode).observe(report.duration_s)
        for kind, count in report.operations.items():
            if count:
                self.operations.labels(kind, "succeeded").inc(count)
        for failure in report.failures:
            self.operations.labels(failure.op, "failed").inc()
        if report.events_applied:
            self.events.labels("applied").inc(report.events_applied)
        if report.events_rejected:
            self.events.labels("rejected").inc(report.events_rejected)
        with self._lock:
            self._last_finished = time.time()
            self._last_result = status
            self._last_error = report.failures[0].error if report.failures else None
        if status == "ok":
            self.last_success.set(time.time())

    def cycle_error(self, mode: str, error: str) -> None:
        """Note a cycle that ended in an error before it could report."""
        with self._lock:
            self._last_finished = time.time()
            self._last_result = "error"
            self._last_error = redact(error)

    def set_held_deletes(self, held: dict[str, Any] | None) -> None:
        """Note the deletes the last reconcile held back (None: none)."""
        with self._lock:
            self._held_deletes = held
        self.held.set(held["count"] if held else 0)

    def cycle_scheduled(self, at: float) -> None:
        """Note when the daemon starts its next cycle (Unix time)."""
        with self._lock:
            self._next_cycle_at = at

    @property
    def next_cycle_at(self) -> float | None:
        """When the daemon starts its next cycle (Unix time), once it has scheduled one."""
        with self._lock:
            return self._next_cycle_at

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details): unhealthy when the last cycle failed or none finished in time."""
        with self._lock:
            finished, result, error = self._last_finished, self._last_result, self._last_error
            held = self._held_deletes
        reference = finished if finished is not None else self._started
        overdue = time.time() - reference > 2 * self.interval_s + OVERDUE_GRACE_S
        failed = result not in (None, "ok", "interrupted")
        details = {"status": "unhealthy" if failed or overdue else "ok",
                   "last_result": result, "last_finished": finished, "overdue": overdue,
                   "last_error": error, "held_deletes": held}
        return not (failed or overdue), redact_value(details)
