"""Closing a run (SPEC §6): its report stored with the run, written to
``DATA_DIR/reports/<run_id>.json`` and posted to each of ``REPORT_URLS``, its failures redacted
first; then whoever listens (the daemon's metrics) is told."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sync_service.clients.infrastructure_api import InfrastructureAPI
from sync_service.errors import SyncError
from sync_service.models.config import SyncConfig
from sync_service.models.data_models import RunReport, iso_utc
from sync_service.store.database_manager import DatabaseManager
from sync_service.utils.clock import Clock
from sync_service.utils.redaction import redact, redact_value

logger = logging.getLogger(__name__)


class RunReports:
    """Stores, writes and sends the report of each run that ends."""

    def __init__(self, config: SyncConfig, db: DatabaseManager, api: InfrastructureAPI, clock: Clock,
                 on_finish: Callable[[RunReport, str], None] | None = None) -> None:
        self.config = config
        self.db = db
        self.api = api
        self.clock = clock
        self.on_finish = on_finish

    def finish(self, report: RunReport, status: str, started: float, *, notify: bool = True) -> None:
        """Close a run that began at ``started`` (monotonic) with ``status`` (``notify``
        False: its cycles were told to ``on_finish`` one by one already)."""
        report.failures = [replace(f, path=redact(f.path), error=redact(f.error))
                           for f in report.failures]
        report.finished_at = iso_utc(self.clock.now())
        report.duration_s = round(self.clock.monotonic() - started, 3)
        self.db.finish_run(report, status)
        self.write(report)
        if status in ("ok", "failed"):
            self.send(report)
        if notify and self.on_finish is not None:
            self.on_finish(report, status)
        logger.info(
            "%s %s %s in %.1fs: %d succeeded, %d failed, %d skipped %s, operations %s",
            report.mode, report.run_id, status, report.duration_s, report.succeeded,
            report.failed, report.skipped, report.skipped_reasons or "", report.operations)

    def write(self, report: RunReport) -> Path:
        """Write the report to ``reports/<run_id>.json``."""
        path = self.config.reports_dir / f"{report.run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(redact_value(report.to_dict()), indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        return path

    def send(self, report: RunReport) -> None:
        """Post the report to each of ``REPORT_URLS``; a failure is logged, never fatal."""
        for url in self.config.report_urls:
            try:
                self.api.post_report(url, redact_value(report.to_dict()))
            except SyncError as exc:
                logger.warning("could not send the report of %s to %s: %s", report.run_id, url, exc)
