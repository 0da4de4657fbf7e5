"""The daemon loop: an initial sync until one has completed, then an incremental cycle whenever
events are waiting (within ``EVENT_DEBOUNCE`` of the first one's arrival, taking at most
``MAX_EVENTS_PER_CYCLE`` so a flood makes progress in steps) and at least every
``SYNC_INTERVAL`` seconds, and, in place of one of them, a reconcile every ``RECONCILE_INTERVAL``
seconds (0: never); the event-driven cycles of one ``REPORT_INTERVAL`` share one run
(``windowed_runs``). It survives errors (backing off while the same error repeats) and stops
cleanly when its clock's stop signal is set (SIGTERM, SIGINT, live reload): every wait is on
that signal.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sync_service.clients.event_source import EventSource
from sync_service.clients.event_watch import Arrivals, EventWatch
from sync_service.errors import LockHeldError, SyncError
from sync_service.runs.health import unix_time
from sync_service.runs.housekeeping import due
from sync_service.runs.metrics import SyncMetrics
from sync_service.runs.sync_service import (
    INCREMENTAL_SYNC,
    INITIAL_SYNC,
    RECONCILE,
    SyncService,
    close_source,
)
from sync_service.runs.windowed_runs import WindowedRuns
from sync_service.utils.backoff import compute_backoff

logger = logging.getLogger(__name__)

MAX_ERROR_BACKOFF_S = 900.0
HOUSEKEEPING_EVERY_S = 3600.0
#: Events one cycle replays at most: past that, the next cycle takes the rest (a flood is
#: applied in steps, each reported, its memory bounded).
MAX_EVENTS_PER_CYCLE = 2000


def next_wait(interval: float, repeats: int) -> float:
    """Seconds until the next cycle: the interval, doubled for each repeat of the same error."""
    if repeats <= 1:
        return interval
    return compute_backoff(repeats, factor=interval, max_backoff=max(interval, MAX_ERROR_BACKOFF_S),
                           jitter=False)


class Daemon:
    """Runs sync cycles until stopped, woken by events (``watch``) or by its timer."""

    def __init__(self, service: SyncService, metrics: SyncMetrics, watch: EventWatch | None = None,
                 *, max_events: int = MAX_EVENTS_PER_CYCLE) -> None:
        self.service = service
        self.metrics = metrics
        self.clock = service.clock
        self.interval = float(service.config.sync_interval)
        self.reconcile_interval = float(service.config.reconcile_interval)
        self.debounce = float(service.config.event_debounce)
        self.watch = watch
        self.arrivals = watch.arrivals if watch is not None else Arrivals()
        self.max_events = max_events
        self.windows = WindowedRuns(service, interval_s=float(service.config.report_interval),
                                    on_cycle=metrics.observe_run, on_lags=metrics.observe_lags)
        self.cycles = 0
        self._source: EventSource | None = None
        self._more_waiting = False
        self._last_sweep: datetime | None = None

    def mode(self) -> str:
        """The cycle to run now: initial sync until one has planned the whole listing (an
        interrupted one is continued); then reconcile when one is due, incremental otherwise."""
        if not self.service.initial_sync_completed():
            return INITIAL_SYNC
        return RECONCILE if self.reconcile_due() else INCREMENTAL_SYNC

    def reconcile_due(self) -> bool:
        """True when ``RECONCILE_INTERVAL`` seconds have passed since the last reconcile started
        (or, before the first, since the last initial sync); a failed one waits its interval too."""
        if self.reconcile_interval <= 0:
            return False
        last = self.service.last_reconcile_at()
        if last is None:
            return True
        started = datetime.fromisoformat(last.replace("Z", "+00:00"))
        return (self.clock.now() - started).total_seconds() >= self.reconcile_interval

    def run_cycle(self, arrived: float | None = None) -> str | None:
        """One cycle (``arrived``: when the events that woke it arrived, monotonic; None: the
        timer); returns the error that ended it, or None."""
        self.metrics.cycle_started()
        mode = self.mode()
        try:
            if mode != INCREMENTAL_SYNC:
                self.windows.close()  # its lock is the run's
            if mode == INITIAL_SYNC:
                self.service.initial_sync()
            elif mode == RECONCILE:
                self.service.reconcile(hold_deletes=True)
            else:
                self._incremental(arrived)
        except LockHeldError as exc:
            logger.info("cycle skipped: %s", exc)
            return None
        except SyncError as exc:
            logger.error("%s cycle failed: %s", mode, exc, exc_info=exc.__cause__ is not None)
            self.metrics.cycle_error(mode, str(exc))
            self._drop_source()  # a fresh connection next time
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # the daemon outlives bugs; the traceback is in the log
            logger.exception("%s cycle failed unexpectedly", mode)
            self.metrics.cycle_error(mode, repr(exc))
            self._drop_source()
            return repr(exc)
        finally:
            self.metrics.records.set(self.service.db.get_record_count())
            self.metrics.set_held_deletes(self.service.held_deletes())
            self.metrics.set_failures(self.service.db.operation_counts()["failed"],
                                      unix_time(self.service.db.operations.oldest_failure()))
            self.cycles += 1
        return None

    def _incremental(self, arrived: float | None) -> None:
        if self._source is None:
            self._source = self.service.event_source(awake=True)
        moment = None
        if arrived is not None:  # monotonic to wall time
            moment = self.clock.now() - timedelta(seconds=max(0.0, self.clock.monotonic() - arrived))
        self._more_waiting = False
        replay = self.windows.cycle(self._source, limit=self.max_events, arrived=moment,
                                    windowed=arrived is not None)
        # A cycle that read its limit left events in the source: the next one goes at once.
        self._more_waiting = replay.messages >= self.max_events

    def _drop_source(self) -> None:
        if self._source is not None:
            close_source(self._source)
            self._source = None

    def housekeep(self) -> None:
        """Remove what is older than RETENTION_DAYS, once an hour; a failure only logs."""
        now = self.clock.now()
        if not due(self._last_sweep, now, HOUSEKEEPING_EVERY_S):
            return
        self._last_sweep = now
        try:
            self.service.housekeeper().sweep()
        except (SyncError, OSError) as exc:
            logger.warning("housekeeping failed (tried again in an hour): %s", exc)

    def wait(self, longest: float) -> float | None:
        """Wait for events (the arrival of the first, monotonic) or ``longest`` seconds (None),
        closing the open report window when it falls due; then wait out the debounce, counted
        from the first event's arrival."""
        if self._more_waiting:  # a flood: the next step at once, no debounce
            first = self.arrivals.take()
            return self.clock.monotonic() if first is None else first
        deadline = self.clock.monotonic() + longest
        while not self.clock.stopping:
            now = self.clock.monotonic()
            due_in = self.windows.due_in()
            timeout = deadline - now if due_in is None else min(deadline - now, due_in)
            first = self.arrivals.wait(max(0.0, timeout), self.clock.stop_event)
            if first is not None:
                self.clock.sleep(first + self.debounce - self.clock.monotonic())
                self.arrivals.take()  # what arrives from now on wakes the next cycle
                return first
            if self.windows.due_in() == 0:
                self._close_window()
            elif self.clock.monotonic() >= deadline:
                return None
        return None

    def _close_window(self) -> None:
        try:
            self.windows.close()
        except SyncError as exc:
            logger.error("could not close the report window: %s", exc)

    def run(self) -> None:
        """Cycle until the stop signal; the operation in flight always finishes and commits,
        and the open report window is closed and posted."""
        logger.info("daemon started: a cycle when events arrive (within %.1fs), at least every %ss",
                    self.debounce, int(self.interval))
        self._start_watch()
        try:
            self._recover()
            self._prepare_source()
            self._loop()
        finally:
            self._close_window()
            if self.watch is not None:
                self.watch.close()
            self._drop_source()
        logger.info("daemon stopped after %d cycles", self.cycles)

    def _start_watch(self) -> None:
        if self.watch is None:
            return
        try:
            self.watch.start()
        except OSError as exc:  # EVENTS_DIR cannot be made or watched: the timer still runs
            logger.error("events cannot be watched (%s): a cycle every %ss only", exc, int(self.interval))
            self.watch = None

    def _prepare_source(self) -> None:
        """Open the source now (NATS: its stream and consumer are created when missing), so
        what is published from now on is kept for the first incremental cycle."""
        try:
            self._source = self.service.event_source(awake=True)
            ensure = getattr(self._source, "ensure", None)
            if ensure is not None:
                ensure()
        except SyncError as exc:
            logger.error("the event source is not ready (the cycles try again): %s", exc)
            self._drop_source()

    def _recover(self) -> None:
        try:
            self.windows.recover()
        except LockHeldError as exc:
            logger.info("report windows left open not closed now: %s", exc)
        except SyncError as exc:
            logger.error("could not close the report windows left open: %s", exc)

    def _loop(self) -> None:
        last_error: str | None = None
        repeats = 0
        arrived: float | None = None
        while not self.clock.stopping:
            error = self.run_cycle(arrived)
            self.housekeep()
            if error is None:
                last_error, repeats = None, 0
            else:
                repeats = repeats + 1 if error == last_error else 1
                last_error = error
            wait = next_wait(self.interval, repeats)
            if repeats > 1:
                logger.warning("the same error %d times in a row; next cycle in %.0fs", repeats, wait)
            self.metrics.cycle_scheduled(self.clock.now().timestamp() + wait)
            if error is not None:  # events wait for the backoff too: the same error would come
                self._more_waiting = False
                self.clock.sleep(wait)
                arrived = self.arrivals.take()
            else:
                arrived = self.wait(wait)
