"""The daemon's incremental cycles as runs at a human rate (SPEC §6).

Cycles that events wake within one ``REPORT_INTERVAL`` share one run: the run row exists from
the window's first cycle, holds the lock while open, takes a checkpoint of its report after each
cycle, and is closed (stored, written, posted once) when the interval has passed, before a
cycle of another mode, at a cycle the timer started, and at SIGTERM. A window left open by a
process killed outright is closed by the next start: its checkpoint plus what its last cycle
recorded, so what was applied is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sync_service.clients.event_source import EventSource
from sync_service.errors import SyncError
from sync_service.execution.executor import count_outcome
from sync_service.models.data_models import OperationFailure, RunReport, iso_utc
from sync_service.runs.report_window import (
    ReportWindow,
    add_counts,
    cycle_id,
    event_lags,
    join_cycle_exports,
    report_from_dict,
)
from sync_service.sources.event_processor import ReplayResult

if TYPE_CHECKING:
    from sync_service.runs.sync_service import SyncService

logger = logging.getLogger(__name__)

INCREMENTAL_SYNC = "incremental-sync"


class WindowedRuns:
    """Runs incremental cycles into report windows and closes them on time."""

    def __init__(self, service: SyncService, *, interval_s: float,
                 on_cycle: Callable[[RunReport, str], None] | None = None,
                 on_lags: Callable[[list[float]], None] | None = None) -> None:
        self.service = service
        self.clock = service.clock
        self.interval_s = interval_s
        self.on_cycle = on_cycle
        self.on_lags = on_lags
        self.window: ReportWindow | None = None

    def cycle(self, source: EventSource, *, limit: int | None, arrived: datetime | None,
              windowed: bool) -> ReplayResult:
        """One incremental cycle in the open window (opened now if none is); ``arrived``: when
        the events that woke it arrived; ``windowed`` False (the timer's cycle) closes the
        window after it, as does the window's interval having passed."""
        window = self.window or self._open()
        report = RunReport(run_id=window.next_cycle_id(), mode=INCREMENTAL_SYNC,
                           started_at=iso_utc(self.clock.now()))
        started = self.clock.monotonic()
        status = "error"
        replay = ReplayResult()
        try:
            replay = self.service.cycle_into(report, source, limit=limit,
                                             replayed=lambda r: self._replayed(window, r))
            status = "ok" if report.failed == 0 else "failed"
            if self.clock.stopping:
                status = "interrupted"
        except SyncError as exc:
            report.failures.append(OperationFailure("run", "", f"{type(exc).__name__}: {exc}"))
            report.failed += 1
            raise
        finally:
            report.finished_at = iso_utc(self.clock.now())
            report.duration_s = round(self.clock.monotonic() - started, 3)
            self._count(window, report, replay, arrived)
            if self.on_cycle is not None:
                self.on_cycle(report, status)
        if not windowed or window.left(self.interval_s, self.clock.monotonic()) == 0:
            self.close()
        return replay

    def due_in(self) -> float | None:
        """Seconds until the open window is due to close (None: none is open)."""
        if self.window is None:
            return None
        return self.window.left(self.interval_s, self.clock.monotonic())

    def close(self) -> None:
        """Close the open window, if any: join its CSVs, store, write and post its report."""
        window, self.window = self.window, None
        if window is None:
            return
        try:
            self._finish(window.report, window.opened, window.report.cycles, window.lags.summary())
        finally:
            self.service.lock.release()

    def recover(self) -> int:
        """Close the windows a killed process left open (under the lock); how many."""
        db = self.service.db
        with self.service.lock:
            unfinished = db.runs.unfinished(INCREMENTAL_SYNC)
            for run_id, started_at, stored in unfinished:
                report = (report_from_dict(stored) if stored else
                          RunReport(run_id=run_id, mode=INCREMENTAL_SYNC, started_at=started_at,
                                    cycles=0))
                # The cycle in flight when the process died: what it recorded counts too; what
                # it left pending is applied (and counted) by the next cycle.
                last = RunReport(run_id=run_id, mode=INCREMENTAL_SYNC, started_at=started_at)
                for name in (cycle_id(run_id, report.cycles + 1), run_id):
                    for outcome in db.operations.finished_of(name):
                        count_outcome(outcome, last)
                add_counts(report, last)
                opened = self.clock.monotonic() - (
                    self.clock.now() - datetime.fromisoformat(started_at.replace("Z", "+00:00"))
                ).total_seconds()
                logger.info("closing the report window %s a stopped process left open", run_id)
                self._finish(report, opened, report.cycles, report.event_lag_s)
        return len(unfinished)

    # -- inside ------------------------------------------------------------------------------

    def _open(self) -> ReportWindow:
        self.service.config.require_bucket()
        self.service.lock.acquire()
        try:
            report = RunReport(run_id=self.service.new_run_id(INCREMENTAL_SYNC), mode=INCREMENTAL_SYNC,
                               started_at=iso_utc(self.clock.now()), cycles=0)
            self.service.db.start_run(report.run_id, report.mode, report.started_at)
        except BaseException:
            self.service.lock.release()
            raise
        self.window = ReportWindow(report, self.clock.monotonic())
        return self.window

    def _count(self, window: ReportWindow, cycle: RunReport, replay: ReplayResult,
               arrived: datetime | None) -> None:
        window.add(cycle)
        lags = list(event_lags(self.service.db.operations.finished_of(cycle.run_id), replay.touched,
                               replay.event_times, arrived, self.clock.now()))
        for lag in lags:
            window.lags.add(lag)
        window.report.event_lag_s = window.lags.summary()
        if lags and self.on_lags is not None:
            self.on_lags(lags)
        self.service.db.runs.checkpoint(window.report)

    def _replayed(self, window: ReportWindow, replay: ReplayResult) -> None:
        """Checkpoint the events a cycle replayed (committed): a kill before the cycle ends
        must not lose them from the window's report."""
        so_far = replace(window.report, events_applied=window.report.events_applied + replay.applied,
                         events_rejected=window.report.events_rejected + replay.rejected)
        self.service.db.runs.checkpoint(so_far)

    def _finish(self, report: RunReport, opened: float, cycles: int, lag: dict[str, float]) -> None:
        report.event_lag_s = lag
        try:
            join_cycle_exports(self.service.config.export_dir, report.run_id, cycles)
        except (OSError, ValueError) as exc:  # the report matters more than its CSVs
            logger.warning("could not join the CSVs of %s: %s", report.run_id, exc)
        self.service.reports.finish(report, "ok" if report.failed == 0 else "failed", opened,
                                    notify=False)
