"""Report windows' pure parts (counts, lags, the joined CSVs) and the spool watch on a real folder."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync_service.clients.event_watch import Arrivals, SpoolWatch
from sync_service.clients.file_spool import FileSpoolSource
from sync_service.models.data_models import (
    FileOperation,
    FileRecord,
    OperationFailure,
    RunReport,
    StoredOperation,
)
from sync_service.runs.report_window import (
    LagSample,
    add_counts,
    event_lags,
    join_cycle_exports,
    report_from_dict,
)
from sync_service.store.csv_processor import CSVProcessor
from sync_service.store.operations import Outcome


def record(id_: int, path: str, version: int = 1) -> FileRecord:
    return FileRecord(id_, path, 1, "e", "2026-12-03T00:00:00Z", "{}", version)


def test_the_joined_csvs_hold_each_record_once_ordered_by_id(tmp_path: Path) -> None:
    csv = CSVProcessor(tmp_path)
    csv.export([record(3, "c"), record(5, "e")], name="w.1-old")
    csv.export([record(3, "c", 2), record(5, "e", 2)], name="w.1-new")
    csv.export([record(1, "a"), record(3, "c", 2)], name="w.2-old")
    csv.export([record(1, "a", 2), record(3, "c", 3)], name="w.2-new")
    (tmp_path / "w.1-plan.csv").write_bytes(b"op,record_id\r\nupdate,3\r\n")
    (tmp_path / "w.2-plan.csv").write_bytes(b"op,record_id\r\nupdate,1\r\n")

    join_cycle_exports(tmp_path, "w", 2)

    old = CSVProcessor.read_records(tmp_path / "w-old.csv")
    new = CSVProcessor.read_records(tmp_path / "w-new.csv")
    assert [(r.id, r.content_version) for r in old] == [(1, 1), (3, 1), (5, 1)]  # before the window
    assert [(r.id, r.content_version) for r in new] == [(1, 2), (3, 3), (5, 2)]  # after it
    assert (tmp_path / "w-plan.csv").read_bytes() == b"op,record_id\r\nupdate,3\r\nupdate,1\r\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w-new.csv", "w-old.csv", "w-plan.csv"]


def test_a_window_adds_its_cycles_and_survives_a_checkpoint() -> None:
    window = RunReport("w", "incremental-sync", "2026-12-03T00:00:00Z", cycles=0)
    for n in range(3):
        cycle = RunReport(f"w.{n + 1}", "incremental-sync", "2026-12-03T00:00:00Z",
                          events_applied=10, succeeded=2, failed=1, phase_seconds={"apply": 0.5})
        cycle.operations["create"] = 2
        cycle.failures.append(OperationFailure("create", f"p{n}", "boom"))
        cycle.skip("unchanged", 4)
        cycle.events_skipped["duplicate"] = 1
        add_counts(window, cycle)
    assert (window.cycles, window.events_applied, window.succeeded, window.failed) == (3, 30, 6, 3)
    assert window.operations["create"] == 6 and window.skipped_reasons == {"unchanged": 12}
    assert window.phase_seconds == {"apply": 1.5} and len(window.failures) == 3
    assert window.events_skipped == {"duplicate": 3}
    assert report_from_dict(window.to_dict()) == window


def test_lags_count_from_the_event_time_else_from_the_arrival() -> None:
    now = datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC)

    def done(record_id: int, status: str = "done") -> Outcome:
        return Outcome(StoredOperation(record_id, f"k{record_id}",
                                       FileOperation("create", record_id, f"p{record_id}")), status)

    lags = list(event_lags(
        [done(1), done(2), done(3, "failed"), done(4)], {1, 2, 3},
        {1: "2026-12-03T12:00:08Z", 2: "not a time"}, now - timedelta(seconds=1), now))
    assert lags == [2.0, 1.0]  # record 4: not touched by an event; record 3: not a success


def test_the_lag_sample_stays_bounded_and_keeps_its_quantiles() -> None:
    sample = LagSample(size=1000, rng=random.Random(7))
    for n in range(100_000):
        sample.add((n % 100) / 100)
    summary = sample.summary()
    assert len(sample.values) == 1000 and summary["count"] == 100_000 and summary["max"] == 0.99
    assert 0.4 <= summary["p50"] <= 0.6 and summary["p99"] >= 0.95


def test_the_spool_watch_sees_a_file_renamed_into_place_and_ignores_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    watch = SpoolWatch(folder).start()
    try:
        (folder / "processed").mkdir()
        (folder / "processed" / "old.jsonl").write_text("{}\n")
        (folder / ".x.partial").write_text("{}\n")
        assert watch.arrivals.wait(0.5, threading.Event()) is None
        before = time.monotonic()
        FileSpoolSource(folder).publish('{"type": "create", "path": "a"}')
        first = watch.arrivals.wait(5, threading.Event())
        assert first is not None and first >= before
        assert watch.arrivals.take() == first and watch.arrivals.take() is None
    finally:
        watch.close()


def test_a_waiting_daemon_stops_at_once() -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert Arrivals().wait(60, stop) is None
    assert time.monotonic() - started < 2
