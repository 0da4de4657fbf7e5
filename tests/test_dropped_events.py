"""Events left alone on purpose are counted: in the run report, in one log line a run, and in
``sync_events_total{result=…}`` (SPEC §5; issue 21 part 5)."""

from __future__ import annotations

from typing import Any

from sync_service.models.data_models import RunReport
from sync_service.models.event_parser import read_message
from sync_service.runs.metrics import SyncMetrics
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import report_of, spool, synced


def notification(bucket: str, key: str, name: str = "ObjectCreated:Put",
                 sequencer: str | None = None) -> dict[str, Any]:
    described: dict[str, Any] = {"key": key}
    if sequencer:
        described["sequencer"] = sequencer
    return {"Records": [{"eventName": name, "s3": {"bucket": {"name": bucket}, "object": described}}]}


def test_the_parser_names_what_a_message_skips() -> None:
    assert read_message('{"Event": "s3:TestEvent", "Bucket": "b"}', bucket="b").skipped == ["test_event"]
    other = read_message('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": '
                         '{"name": "other"}, "object": {"key": "a.txt"}}}]}', bucket="mine")
    assert (other.events, other.skipped) == ([], ["foreign_bucket"])
    outside = read_message('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": '
                           '{"name": "mine"}, "object": {"key": "elsewhere/a.txt"}}}]}',
                           bucket="mine", prefix="synced/")
    assert (outside.events, outside.skipped) == ([], ["outside_prefix"])


def test_the_metric_counts_events_by_result() -> None:
    metrics = SyncMetrics(interval_s=60)
    report = RunReport(run_id="r", mode="incremental-sync", started_at="2026-12-03T00:00:00Z",
                       events_applied=3, events_rejected=1,
                       events_skipped={"duplicate": 2, "stale": 1, "test_event": 1})
    metrics.observe_run(report, "ok")
    metrics.observe_run(report, "ok")
    sample = metrics.registry.get_sample_value
    assert [sample("sync_events_total", {"result": r}) for r in
            ("applied", "rejected", "duplicate", "stale", "test_event")] == [6, 2, 4, 2, 2]


def test_duplicate_stale_foreign_and_test_events_are_counted_in_the_report_and_the_log(
        cli: Cli, bucket: Bucket, api: Api) -> None:
    # given a synced bucket and a spool with one event that applies and four that must not
    synced(cli, bucket, {"a.txt": b"a", "k.txt": b"k"})
    bucket.put("a.txt", b"a2")
    spool(cli, "001",
          {"event_id": "e1", "type": "create", "path": "a.txt"},
          {"event_id": "e1", "type": "create", "path": "a.txt"},  # delivered twice
          notification(bucket.name, "k.txt", "ObjectCreated:Put", "0B"),
          notification(bucket.name, "k.txt", "ObjectRemoved:Delete", "0A"),  # older: arrived late
          notification("someone-elses-bucket", "k.txt", "ObjectRemoved:Delete"),
          {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket.name})
    # when the incremental sync runs
    result = cli.run("incremental-sync")
    # then the events that apply do, and each one left alone is counted by reason, once
    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert (report["events_applied"], report["events_rejected"]) == (2, 0)
    dropped = {"duplicate": 1, "stale": 1, "foreign_bucket": 1, "test_event": 1}
    assert report["events_skipped"] == dropped
    assert report["skipped_reasons"] == dropped
    assert api.files()["k.txt"] and api.files()["a.txt"]["size"] == 2
    lines = [line for line in result.stderr.splitlines() if "events left alone" in line]
    assert len(lines) == 1, result.stderr
    assert "1 duplicate, 1 foreign_bucket, 1 stale, 1 test_event" in lines[0]
