"""Pure units: path rules, backoff schedule, permissions from metadata, run ids."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from sync_service.models.data_models import FileRecord, ObjectSummary, iso_utc
from sync_service.planning.planners import listing_change
from sync_service.utils.backoff import compute_backoff, parse_retry_after
from sync_service.utils.paths import is_folder_marker, parent_folder, path_error
from sync_service.utils.permissions import canonical_json, permissions_from_metadata


@pytest.mark.parametrize("path", [
    "a.txt", "docs/a b.txt", "übersicht/日本.txt", "plus+sign", "percent%20", "NA", "0012",
    "a,b.txt", '"quoted".txt', "x" * 1024, "é" * 512, "...", "a/.hidden", "a/..b",
])
def test_valid_paths(path: str) -> None:
    assert path_error(path) is None


@pytest.mark.parametrize(("path", "reason"), [
    ("", "empty path"), ("/abs", "leading '/'"), ("a//b", "empty segment"),
    ("a/", "empty segment"), ("./a", "'.' segment"), ("a/../b", "'..' segment"),
    ("..", "'..' segment"), ("a\x00b", "control character U+0000"),
    ("line\nbreak", "control character U+000A"), ("del\x7f", "control character U+007F"),
    ("x" * 1025, "longer than 1024 bytes"), ("é" * 513, "longer than 1024 bytes"),
    ("next\x85line", "control character U+0085"), ("c1\x80", "control character U+0080"),
    ("c1\x9f", "control character U+009F"),
    ("dir\\file.txt", "backslash (a separator on some file managers)"),
])
def test_invalid_paths_name_their_reason(path: str, reason: str) -> None:
    assert path_error(path) == reason


def test_folder_markers_and_parents() -> None:
    assert is_folder_marker("photos/", 0)
    assert not is_folder_marker("photos/", 5)
    assert not is_folder_marker("photos", 0)
    assert parent_folder("a/b/c.txt") == "a/b"
    assert parent_folder("c.txt") == ""


def test_backoff_grows_exponentially_to_a_cap() -> None:
    waits = [compute_backoff(n, factor=0.5, max_backoff=3, jitter=False) for n in range(1, 7)]
    assert waits == [0.5, 1.0, 2.0, 3, 3, 3]


def test_backoff_jitter_stays_below_the_ceiling() -> None:
    rng = random.Random(1)
    for attempt in range(1, 10):
        ceiling = compute_backoff(attempt, jitter=False)
        assert 0 <= compute_backoff(attempt, rng=rng) <= ceiling


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_permissions_from_metadata_case_insensitive_and_canonical() -> None:
    default = {"visibility": "private"}
    got = permissions_from_metadata({"Permissions": '{"write": ["b"], "read": ["a"]}'},
                                    key="permissions", default=default)
    assert got == '{"read":["a"],"write":["b"]}'
    assert permissions_from_metadata({}, key="permissions", default=default) == canonical_json(default)


def test_invalid_permissions_metadata_warns_and_uses_default(caplog: pytest.LogCaptureFixture) -> None:
    got = permissions_from_metadata({"permissions": "{not json"}, key="permissions",
                                    default={"visibility": "private"}, path="a.txt")
    assert got == '{"visibility":"private"}'
    assert "not valid JSON" in caplog.text
    assert permissions_from_metadata({"permissions": "[1]"}, key="permissions",
                                     default={"v": 1}) == '{"v":1}'


def test_iso_utc_drops_sub_seconds_and_converts_zones() -> None:
    moment = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(moment) == "2026-11-24T07:30:15Z"


def test_listing_change_decides_by_etag_size_and_time() -> None:
    summary = ObjectSummary("k", "k", 10, "e1", "2026-01-01T00:00:00Z")
    same = FileRecord(1, "k", 10, "e1", "2026-01-01T00:00:00Z", "{}", 1)
    assert listing_change(summary, None) == "create"
    assert listing_change(summary, same) is None
    assert listing_change(summary, FileRecord(1, "k", 10, "e0", "2026-01-01T00:00:00Z", "{}", 1)) == "update"
    assert listing_change(summary, FileRecord(1, "k", 11, "e1", "2026-01-01T00:00:00Z", "{}", 1)) == "update"
    assert listing_change(summary, FileRecord(1, "k", 10, "e1", "2025-01-01T00:00:00Z", "{}", 1)) == "refresh"


def test_the_event_loop_runs_with_fewer_collections_and_restores_the_collector() -> None:
    import gc

    from sync_service.utils.aio import YOUNG_GC_THRESHOLD, run_async

    before, frozen = gc.get_threshold(), gc.get_freeze_count()

    async def during() -> tuple[int, int, int]:
        return gc.get_threshold()

    assert run_async(during())[0] == YOUNG_GC_THRESHOLD
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
