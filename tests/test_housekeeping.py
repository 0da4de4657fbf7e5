"""Housekeeping (SPEC §6): real files and a real database (SQLite and PostgreSQL), an injected
clock; the NATS stream the service creates has a maximum age; the daemon sweeps."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devtools.local_servers import NatsServer, free_port
from sync_service.clients.nats_source import NatsSource
from sync_service.models.data_models import RunReport, iso_utc
from sync_service.runs.housekeeping import Housekeeper
from sync_service.utils.clock import Clock
from tests.helpers.harness import Cli, Databases
from tests.helpers.sync import stop
from tests.helpers.waiting import wait_for

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class FixedClock(Clock):
    def now(self) -> datetime:
        return NOW


def aged(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    moment = (NOW - timedelta(days=days)).timestamp()
    os.utime(path, (moment, moment))
    return path


def test_a_sweep_removes_only_what_is_past_the_retention(tmp_path: Path, databases: Databases) -> None:
    # given files and rows of 40 days ago and of yesterday
    folders = {name: tmp_path / name for name in ("exports", "reports", "dead_letters", "processed")}
    old = [aged(folder / "old.json", 40) for folder in folders.values()]
    new = [aged(folder / "new.json", 1) for folder in folders.values()]
    db = databases.open()
    with db.transaction():
        db.events.mark_applied("old-event", iso_utc(NOW - timedelta(days=40)))
        db.events.mark_applied("new-event", iso_utc(NOW - timedelta(days=1)))
        db.events.add_dead_letter("file", "x:1", "bad JSON", "{")
    db.database.execute("UPDATE dead_letters SET created_at = ?", (iso_utc(NOW - timedelta(days=40)),))
    for day, run_id in ((50, "old"), (45, "newest-reconcile")):
        started = iso_utc(NOW - timedelta(days=day))
        mode = "incremental-sync" if run_id == "old" else "reconcile"
        db.start_run(run_id, mode, started)
        db.finish_run(RunReport(run_id, mode, started, finished_at=started), "ok")
    db.start_run("recent", "incremental-sync", iso_utc(NOW - timedelta(days=1)))
    long_ago = iso_utc(NOW - timedelta(days=40))
    for status in ("done", "failed", "pending", "superseded"):
        db.database.execute("INSERT INTO operations (run_id, op, path, status, updated_at) VALUES (?, ?, ?, ?, ?)",
                            ("old", "create", f"{status}.txt", status, long_ago))
    # when a sweep runs with a retention of 30 days and a redelivery window of 30 days
    result = Housekeeper(db, folders, retention_days=30, redelivery_window_s=30 * 86400.0,
                         clock=FixedClock()).sweep()
    # then what is older goes, what is newer stays; failed and pending operations always stay
    assert not any(p.exists() for p in old) and all(p.exists() for p in new)
    assert result.files == dict.fromkeys(folders, 1)
    assert [r[0] for r in db.database.query("SELECT event_id FROM applied_events")] == ["new-event"]
    assert db.dead_letter_count() == 0
    assert sorted(r[0] for r in db.database.query("SELECT run_id FROM runs")) == ["newest-reconcile", "recent"]
    assert sorted(r[0] for r in db.database.query("SELECT status FROM operations")) == ["failed", "pending"]


def test_applied_ids_stay_while_a_redelivery_can_come(tmp_path: Path, databases: Databases) -> None:
    db = databases.open()
    with db.transaction():
        db.events.mark_applied("year-old", iso_utc(NOW - timedelta(days=365)))
    # no window (a stream without a maximum age): nothing is forgotten; RETENTION_DAYS=0: nothing at all
    Housekeeper(db, {}, retention_days=30, redelivery_window_s=None, clock=FixedClock()).sweep()
    old_file = aged(tmp_path / "reports" / "r.json", 400)
    Housekeeper(db, {"reports": old_file.parent}, retention_days=0, redelivery_window_s=1.0,
                clock=FixedClock()).sweep()
    assert db.events.was_applied("year-old") and old_file.exists()


def test_the_stream_the_service_creates_has_a_maximum_age(nats_server: NatsServer) -> None:
    stream = f"HK{uuid.uuid4().hex[:8]}"
    source = NatsSource(nats_server.url, stream, f"{stream.lower()}.events", "hk", max_age_s=30 * 86400.0)
    try:
        source.ensure()
        assert source.redelivery_window_s() == 30 * 86400.0
    finally:
        source.close()


def test_the_daemon_sweeps_old_files(cli: Cli) -> None:
    # given a report and a processed spool file of 40 days ago, and a fresh report
    data = cli.workdir / "data"
    old_report, old_spool = data / "reports" / "old.json", data / "events" / "processed" / "e.x.jsonl"
    for path in (old_report, old_spool):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        moment = time.time() - 40 * 86400
        os.utime(path, (moment, moment))
    # when the daemon runs with the default retention (30 days)
    daemon = cli.start("daemon", SYNC_INTERVAL="1", METRICS_PORT=str(free_port()))
    try:
        wait_for(lambda: not old_report.exists() and not old_spool.exists(), timeout=60)
        wait_for(lambda: len(list((data / "reports").glob("initial-sync-*.json"))) == 1, timeout=30)
    finally:
        stop(daemon)
