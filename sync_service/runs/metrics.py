"""What the daemon exposes: Prometheus metrics, and what it knows of its own cycles for the
health verdict (``sync_service.runs.health``) and its liveness."""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sync_service.models.data_models import RunReport
from sync_service.runs.health import RAN_ITS_PLAN, CycleState, overdue
from sync_service.utils.redaction import redact

#: How late the loop may wake for its next cycle before ``/livez`` says it has stalled.
LIVENESS_GRACE_S = 60.0


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
        self.records = Gauge("sync_records", "File records in the database", registry=self.registry)
        self.last_success = Gauge("sync_last_success_timestamp_seconds",
                                  "Unix time the last cycle that ran its plan finished (failed "
                                  "operations or not)", registry=self.registry)
        self.failed_operations = Gauge("sync_failed_operations",
                                       "Operations that failed and wait for the next cycle's retry",
                                       registry=self.registry)
        self.oldest_failure_age = Gauge("sync_oldest_failure_age_seconds",
                                        "Seconds since the longest-failing operation was first tried "
                                        "(0: none failing)", registry=self.registry)
        self.oldest_failure_age.set_function(self._oldest_failure_age)
        self.duration = Histogram("sync_cycle_duration_seconds", "Duration of sync cycles",
                                  ["mode"], registry=self.registry,
                                  buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
        self.event_lag = Histogram("sync_event_lag_seconds",
                                   "Seconds from an event (its own time, else its arrival) to the "
                                   "success of its operations", registry=self.registry,
                                   buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900))
        self.held = Gauge("sync_reconcile_held_deletes",
                          "Deletes the last reconcile held back (over the delete guard)",
                          registry=self.registry)
        self._lock = threading.Lock()
        self._started = time.time()
        self._last_finished: float | None = None
        self._last_result: str | None = None
        self._last_error: str | None = None
        self._last_success: float | None = None
        self._next_cycle_at: float | None = None
        self._in_cycle = False
        self._oldest_failure: float | None = None

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
        for reason, count in report.events_skipped.items():  # duplicate, stale, foreign_bucket, …
            self.events.labels(reason).inc(count)
        now = time.time()
        with self._lock:
            self._last_finished = now
            self._last_result = status
            self._last_error = report.failures[0].error if report.failures else None
            if status in RAN_ITS_PLAN:
                self._last_success = now
        if status in RAN_ITS_PLAN:
            self.last_success.set(now)

    def observe_lags(self, lags: list[float]) -> None:
        """Count the lags of a cycle's event-driven operations (seconds)."""
        for lag in lags:
            self.event_lag.observe(lag)

    def cycle_error(self, mode: str, error: str) -> None:
        """Note a cycle that ended in an error before it could report."""
        with self._lock:
            self._last_finished = time.time()
            self._last_result = "error"
            self._last_error = redact(error)

    def set_held_deletes(self, held: dict[str, Any] | None) -> None:
        """Note the deletes the last reconcile held back (None: none)."""
        self.held.set(held["count"] if held else 0)

    def set_failures(self, count: int, oldest: float | None) -> None:
        """Note how many operations are failed, and since when (Unix time) the oldest is."""
        self.failed_operations.set(count)
        with self._lock:
            self._oldest_failure = oldest if count else None

    def _oldest_failure_age(self) -> float:
        with self._lock:
            oldest = self._oldest_failure
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def cycle_started(self) -> None:
        """Note that the loop has started a cycle."""
        with self._lock:
            self._in_cycle = True

    def cycle_scheduled(self, at: float) -> None:
        """Note when the daemon starts its next cycle (Unix time): the loop waits until then."""
        with self._lock:
            self._next_cycle_at = at
            self._in_cycle = False

    @property
    def next_cycle_at(self) -> float | None:
        """When the daemon starts its next cycle (Unix time), once it has scheduled one."""
        with self._lock:
            return self._next_cycle_at

    def cycle_state(self) -> CycleState:
        """The daemon's cycles as the health verdict needs them."""
        with self._lock:
            return CycleState(
                last_result=self._last_result, last_error=self._last_error,
                last_finished=self._last_finished, last_success=self._last_success,
                overdue=overdue(self._last_finished, self._started, self.interval_s, time.time()))

    def liveness(self) -> tuple[bool, str]:
        """(alive, why): the loop is alive while it runs a cycle or waits for one that is not
        overdue by more than ``LIVENESS_GRACE_S``; a cycle that takes long (an initial sync of
        a large bucket) is readiness's business, not a reason to restart the process."""
        with self._lock:
            in_cycle, next_at = self._in_cycle, self._next_cycle_at
        if in_cycle:
            return True, "a cycle is running"
        if next_at is None:
            return True, "starting"
        late = time.time() - next_at
        if late > LIVENESS_GRACE_S:
            return False, f"the loop missed its next cycle by {late:.0f} s"
        return True, "waiting for the next cycle"
