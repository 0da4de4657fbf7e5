"""The orchestration of runs: initial sync today, status; incremental sync joins later."""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from sync_service.clients.infrastructure_api import InfrastructureAPI
from sync_service.clients.s3_manager import S3Manager
from sync_service.errors import SyncError
from sync_service.models.config import SyncConfig
from sync_service.models.data_models import OperationFailure, RunReport, iso_utc
from sync_service.services.csv_processor import CSVProcessor
from sync_service.services.database_manager import DatabaseManager
from sync_service.services.sync_lock import SyncLock
from sync_service.services.transfer_pipeline import Progress, TransferPipeline
from sync_service.utils.clock import Clock

logger = logging.getLogger(__name__)

INITIAL_SYNC = "initial-sync"
INITIAL_SYNC_OPS = ("create", "update", "update_permissions")


class SyncService:
    """Runs syncs between the customer bucket and the file manager, and reports on them."""

    def __init__(self, config: SyncConfig, s3: S3Manager | None = None,
                 db: DatabaseManager | None = None, api: InfrastructureAPI | None = None,
                 csv: CSVProcessor | None = None, clock: Clock | None = None,
                 interactive: bool | None = None) -> None:
        self.config = config
        self._s3 = s3
        self.db = db or DatabaseManager(config.database_path)
        self.api = api or InfrastructureAPI(
            config.api_base_url, token=config.api_token, timeout=config.api_timeout,
            max_retries=config.max_retries, pool_size=config.sync_workers + 4)
        self.csv = csv or CSVProcessor(config.export_dir)
        self.clock = clock or Clock()
        self.interactive = interactive
        self.lock = SyncLock(config.database_path)

    @property
    def s3(self) -> S3Manager:
        """The bucket client, built on first use so commands without S3 never need one."""
        if self._s3 is None:
            self._s3 = S3Manager.from_config(self.config)
        return self._s3

    def new_run_id(self, mode: str) -> str:
        """A sortable, unique run id such as ``initial-sync-20261124T071300Z-3f9a``."""
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%SZ")
        return f"{mode}-{stamp}-{secrets.token_hex(2)}"

    # -- initial sync ------------------------------------------------------------------------

    def initial_sync(self) -> RunReport:
        """Deliver every object of the bucket to the file manager, then export the state CSV."""
        self.config.require_bucket()
        with self.lock:
            report = RunReport(run_id=self.new_run_id(INITIAL_SYNC), mode=INITIAL_SYNC,
                               started_at=iso_utc(self.clock.now()))
            started = self.clock.monotonic()
            self.db.start_run(report.run_id, report.mode, report.started_at)
            retried = self.db.supersede_failures(INITIAL_SYNC_OPS, report.run_id)
            if retried:
                logger.info("retrying %d operations that failed in earlier runs", retried)
            logger.info("initial sync %s: bucket %r prefix %r -> %s, %d workers",
                        report.run_id, self.config.customer_s3_bucket,
                        self.config.customer_s3_prefix, self.config.api_base_url,
                        self.config.sync_workers)
            pipeline = TransferPipeline(
                self.s3, self.api, self.db, run_id=report.run_id,
                workers=self.config.sync_workers,
                permissions_key=self.config.permissions_metadata_key,
                default_permissions=self.config.default_permissions)
            progress = Progress(report, interactive=self.interactive)
            status = "error"
            try:
                pipeline.run(progress)
                status = "ok" if report.failed == 0 else "failed"
            except KeyboardInterrupt:
                status = "interrupted"
                raise
            except SyncError as exc:
                report.failures.append(_fatal_failure(exc))
                report.failed += 1
                raise
            finally:
                progress.close()
                self._finish(report, status, started)
            return report

    def _finish(self, report: RunReport, status: str, started: float) -> None:
        """Close a run: export the state, store and send the report."""
        if status in ("ok", "failed"):
            path = self.csv.export(self.db.iter_records(), name=f"state_{report.run_id}")
            logger.info("state exported to %s", path)
        report.finished_at = iso_utc(self.clock.now())
        report.duration_s = round(self.clock.monotonic() - started, 3)
        self.db.finish_run(report, status)
        self._write_report(report)
        if status in ("ok", "failed"):
            self._send_report(report)
        logger.info(
            "%s %s %s in %.1fs: %d succeeded, %d failed, %d skipped %s, operations %s",
            report.mode, report.run_id, status, report.duration_s, report.succeeded,
            report.failed, report.skipped, report.skipped_reasons or "", report.operations)

    def _write_report(self, report: RunReport) -> Path:
        path = self.config.reports_dir / f"{report.run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        return path

    def _send_report(self, report: RunReport) -> None:
        for url in self.config.report_urls:
            try:
                self.api.post_report(url, report.to_dict())
            except SyncError as exc:
                logger.warning("could not send the report of %s to %s: %s",
                               report.run_id, url, exc)

    # -- status ------------------------------------------------------------------------------

    def get_sync_status(self, *, live: bool = True) -> dict[str, Any]:
        """Records, last runs, operations, event position, dead letters and live checks."""
        last_runs = {}
        for mode, run in self.db.last_runs().items():
            report = run.pop("report") or {}
            if run["status"] == "running" and not self.lock.is_held_elsewhere():
                run["status"] = "interrupted"
            run.update({k: report.get(k) for k in ("duration_s", "succeeded", "failed", "skipped")})
            last_runs[mode] = run
        dead_letters = self.config.dead_letters_dir
        status: dict[str, Any] = {
            "records": self.db.get_record_count(),
            "last_runs": last_runs,
            "operations": self.db.operation_counts(),
            "recent_failures": self.db.failed_operations(limit=10),
            "event_position": self.db.get_setting("event_position"),
            "dead_letters": len(list(dead_letters.glob("*.json"))) if dead_letters.is_dir() else 0,
            "sync_running": self.lock.is_held_elsewhere(),
            "database": str(self.config.database_path),
            "bucket": self.config.customer_s3_bucket,
            "prefix": self.config.customer_s3_prefix,
            "api": self.config.api_base_url,
        }
        if live:
            status["checks"] = {
                "s3": _timed_check(lambda: self.s3.check()),
                "api": _timed_check(self.api.health),
                "database": _timed_check(self.db.check),
            }
        return status


def _timed_check(check: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        check()
    except SyncError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def _fatal_failure(exc: SyncError) -> OperationFailure:
    return OperationFailure("run", "", f"{type(exc).__name__}: {exc}")
