"""The daemon loop: an initial sync until one has completed, then an incremental sync every
``SYNC_INTERVAL`` seconds and, in place of one of them, a reconcile every
``RECONCILE_INTERVAL`` seconds (0: never), surviving errors (backing off while the same error repeats) and
stopping cleanly when its clock's stop signal is set (SIGTERM, SIGINT, live reload).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sync_service.errors import LockHeldError, SyncError
from sync_service.services.health import unix_time
from sync_service.services.housekeeping import due
from sync_service.services.metrics import SyncMetrics
from sync_service.services.sync_service import INCREMENTAL_SYNC, INITIAL_SYNC, RECONCILE, SyncService
from sync_service.utils.backoff import compute_backoff

logger = logging.getLogger(__name__)

MAX_ERROR_BACKOFF_S = 900.0
HOUSEKEEPING_EVERY_S = 3600.0


def next_wait(interval: float, repeats: int) -> float:
    """Seconds until the next cycle: the interval, doubled for each repeat of the same error."""
    if repeats <= 1:
        return interval
    return compute_backoff(repeats, factor=interval, max_backoff=max(interval, MAX_ERROR_BACKOFF_S),
                           jitter=False)


class Daemon:
    """Runs sync cycles until stopped."""

    def __init__(self, service: SyncService, metrics: SyncMetrics) -> None:
        self.service = service
        self.metrics = metrics
        self.clock = service.clock
        self.interval = float(service.config.sync_interval)
        self.reconcile_interval = float(service.config.reconcile_interval)
        self.cycles = 0
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

    def run_cycle(self) -> str | None:
        """One cycle; returns the error that ended it, or None."""
        self.metrics.cycle_started()
        mode = self.mode()
        try:
            if mode == INITIAL_SYNC:
                self.service.initial_sync()
            elif mode == RECONCILE:
                self.service.reconcile(hold_deletes=True)
            else:
                self.service.incremental_sync()
        except LockHeldError as exc:
            logger.info("cycle skipped: %s", exc)
            return None
        except SyncError as exc:
            logger.error("%s cycle failed: %s", mode, exc, exc_info=exc.__cause__ is not None)
            self.metrics.cycle_error(mode, str(exc))
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # the daemon outlives bugs; the traceback is in the log
            logger.exception("%s cycle failed unexpectedly", mode)
            self.metrics.cycle_error(mode, repr(exc))
            return repr(exc)
        finally:
            self.metrics.records.set(self.service.db.get_record_count())
            self.metrics.set_held_deletes(self.service.held_deletes())
            self.metrics.set_failures(self.service.db.operation_counts()["failed"],
                                      unix_time(self.service.db.operations.oldest_failure()))
            self.cycles += 1
        return None

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

    def run(self) -> None:
        """Cycle until the stop signal; the operation in flight always finishes and commits."""
        logger.info("daemon started: a cycle every %ss", int(self.interval))
        last_error: str | None = None
        repeats = 0
        while not self.clock.stopping:
            error = self.run_cycle()
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
            self.clock.sleep(wait)
        logger.info("daemon stopped after %d cycles", self.cycles)
