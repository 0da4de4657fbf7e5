"""Runs with their reports, and small settings (positions, the initial-sync marks)."""

from __future__ import annotations

import json
from typing import Any

from sync_service.models.data_models import RunReport
from sync_service.store.database import Database
from sync_service.utils.redaction import redact_value


class RunStore:
    """Reads and changes ``runs`` and ``settings``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, run_id: str, mode: str, started_at: str) -> None:
        """Record that a run began."""
        with self.db.transaction():
            self.db.execute("INSERT INTO runs (run_id, mode, started_at, status) VALUES (?,?,?,?)",
                            (run_id, mode, started_at, "running"))

    def finish(self, report: RunReport, status: str) -> None:
        """Store a run's report and outcome."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, report = ? WHERE run_id = ?",
                (report.finished_at, status, json.dumps(redact_value(report.to_dict())), report.run_id))

    def checkpoint(self, report: RunReport) -> None:
        """Store the report so far of a run still open (a report window between cycles)."""
        with self.db.transaction():
            self.db.execute("UPDATE runs SET report = ? WHERE run_id = ? AND status = 'running'",
                            (json.dumps(redact_value(report.to_dict())), report.run_id))

    def unfinished(self, mode: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        """Runs of ``mode`` still marked running: id, start, and their last checkpoint."""
        rows = self.db.query("SELECT run_id, started_at, report FROM runs "
                             "WHERE mode = ? AND status = 'running' ORDER BY started_at", (mode,))
        return [(run_id, started, json.loads(report) if report else None)
                for run_id, started, report in rows]

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """The newest run of each mode: id, times, status, and its report when finished."""
        rows = self.db.query(
            "SELECT r.mode, r.run_id, r.started_at, r.finished_at, r.status, r.report FROM runs r "
            "WHERE r.started_at = (SELECT max(started_at) FROM runs WHERE mode = r.mode) "
            "ORDER BY r.mode")
        return {
            mode: {"run_id": run_id, "started_at": started, "finished_at": finished,
                   "status": status, "report": json.loads(report) if report else None}
            for mode, run_id, started, finished, status, report in rows
        }

    def prune(self, before: str) -> int:
        """Forget finished runs started before ``before`` (ISO-8601), but the newest of each mode."""
        with self.db.transaction():
            return int(self.db.execute(
                "DELETE FROM runs WHERE started_at < ? AND status != 'running' AND started_at < "
                "(SELECT max(started_at) FROM runs newest WHERE newest.mode = runs.mode)",
                (before,)).rowcount)

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs of every mode, newest first: id, mode, times, status, and report."""
        rows = self.db.query(
            "SELECT run_id, mode, started_at, finished_at, status, report FROM runs "
            "ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,))
        return [{"run_id": run_id, "mode": mode, "started_at": started, "finished_at": finished,
                 "status": status, "report": json.loads(report) if report else None}
                for run_id, mode, started, finished, status, report in rows]

    def get_setting(self, key: str) -> str | None:
        """A stored setting such as an event position."""
        rows = self.db.query("SELECT value FROM settings WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting (joins the caller's transaction)."""
        with self.db.transaction():
            self.db.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def delete_setting(self, key: str) -> None:
        """Forget a setting (joins the caller's transaction)."""
        with self.db.transaction():
            self.db.execute("DELETE FROM settings WHERE key = ?", (key,))
