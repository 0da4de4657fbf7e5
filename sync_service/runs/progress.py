"""Showing how a run goes: a bar on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from sync_service.models.data_models import RunReport

logger = logging.getLogger(__name__)

PROGRESS_LOG_INTERVAL_S = 10.0


class Progress:
    """Follows a run's report as its outcomes are counted (from one thread)."""

    def __init__(self, report: RunReport, *, interactive: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.report = report
        self._clock = clock
        self._started = clock()
        self._last_log = self._started
        self._shown = 0
        self._bar: Any = None
        if interactive if interactive is not None else sys.stderr.isatty():
            from tqdm import tqdm
            self._bar = tqdm(unit="obj", desc=report.mode, dynamic_ncols=True, leave=False)

    @property
    def seen(self) -> int:
        """Objects dealt with so far: delivered, skipped or failed."""
        report = self.report
        return report.succeeded + report.skipped + report.failed

    def update(self) -> None:
        """Show the report's counts now (the bar) or when a log line is due."""
        if self._bar is not None:
            seen = self.seen
            self._bar.update(seen - self._shown)
            self._shown = seen
            self._bar.set_postfix(ok=self.report.succeeded, skipped=self.report.skipped,
                                  failed=self.report.failed, refresh=False)
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
