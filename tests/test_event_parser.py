"""Event parsing: every accepted shape, and the reasons malformed messages are rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync_service.models.event_parser import (
    EventError,
    message_id,
    parse_message,
    read_message,
    sequencer_is_newer,
)

# A copy of ../shared/fixtures/events, so the suite runs from a clone on its own.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "events"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_native_events() -> None:
    lines = fixture("native.jsonl").splitlines()
    events = [parse_message(line)[0] for line in lines]
    assert [(e.type, e.path, e.new_path) for e in events] == [
        ("create", "docs/new plan.md", None),
        ("change_permission", "docs/new plan.md", None),
        ("rename", "docs/new plan.md", "docs/plan v2.md"),
        ("move", "docs/plan v2.md", "archive/plan v2.md"),
        ("delete", "archive/plan v2.md", None),
    ]
    assert events[1].permissions == {"read": ["alice", "bob"], "write": ["alice"]}
    assert events[0].event_id == "evt-0001"


def test_aws_notifications_decode_keys_as_form_data() -> None:
    created = parse_message(fixture("aws-object-created.json"), bucket="customer-bucket")
    assert [(e.type, e.path) for e in created] == [("create", "reports/q3 summary (final).pdf")]
    assert created[0].sequencer == "00673DA8A61B2F4C2A"
    removed = parse_message(fixture("aws-object-removed.json"), bucket="customer-bucket")
    assert [(e.type, e.path) for e in removed] == [
        ("delete", "tmp/scratch file.txt"), ("delete", "archive/2025/übersicht.xlsx")]
    assert len({e.event_id for e in removed}) == 2


def test_minio_notifications_decode_slashes() -> None:
    created = parse_message(fixture("minio-object-created.json"), bucket="customer-bucket")
    assert [(e.type, e.path) for e in created] == [("create", "photos/2026/team photo.jpg")]
    removed = parse_message(fixture("minio-object-removed.json"))
    assert [(e.type, e.path) for e in removed] == [("delete", "photos/2026/old.png")]


def test_test_events_other_buckets_and_prefixes_are_ignored() -> None:
    assert parse_message(fixture("aws-test-event.json")) == []
    assert parse_message(fixture("aws-object-created.json"), bucket="another-bucket") == []
    assert parse_message(fixture("aws-object-created.json"), prefix="elsewhere/") == []
    inside = parse_message(fixture("aws-object-created.json"), prefix="reports/")
    assert [e.path for e in inside] == ["q3 summary (final).pdf"]


def test_legacy_events_become_posix_permissions() -> None:
    events = [parse_message(line)[0] for line in fixture("legacy.jsonl").splitlines()]
    assert [(e.type, e.path, e.new_path) for e in events] == [
        ("create", "documents/contract.pdf", None),
        ("change_permission", "documents/contract.pdf", None),
        ("rename", "documents/contract.pdf", "documents/contract-signed.pdf"),
        ("delete", "temp/cache.tmp", None),
    ]
    assert events[0].permissions == {"mode": "rw-r--r--", "owner": "legal", "group": "legal"}
    assert events[1].permissions == {"mode": "rw-r-----"}


def test_messages_without_an_id_get_a_stable_hash() -> None:
    body = json.dumps({"type": "delete", "path": "a.txt"})
    assert parse_message(body)[0].event_id == message_id(body) == parse_message(body)[0].event_id


@pytest.mark.parametrize(("body", "reason"), [
    ("{not json", "bad JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"type": "explode", "path": "a"}', "unknown event type"),
    ('{"path": "a"}', "missing field 'type'"),
    ('{"type": "delete"}', "missing field 'path'"),
    ('{"type": "rename", "path": "a"}', "missing field 'new_path'"),
    ('{"type": "delete", "path": "../etc/passwd"}', "invalid path"),
    ('{"type": "move", "path": "a", "new_path": "/abs"}', "invalid new_path"),
    ('{"type": "change_permission", "path": "a"}', "needs a 'permissions' object"),
    ('{"event_type": "change_permission", "file_path": "/a", "metadata": {"new_permissions": "rwxrwxrwz"}}',
     "invalid POSIX permissions"),
    ('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {}}}]}', "no object key"),
])
def test_malformed_messages_name_their_reason(body: str, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        parse_message(body)


def test_sequencers_compare_as_right_padded_hex() -> None:
    assert sequencer_is_newer("00673DA9CB6A10AA90", "00673DA9CB4E1D0F11")
    assert not sequencer_is_newer("00673DA9CB4E1D0F11", "00673DA9CB6A10AA90")
    assert sequencer_is_newer("0A1", "0A")  # 0A1 > 0A0
    assert not sequencer_is_newer("0A", "0A0")  # equal once padded


def test_a_folder_marker_notification_is_skipped_and_counted() -> None:
    # given MinIO's notification for a folder made in its console, beside a file's
    document = json.loads(fixture("minio-object-created.json"))
    folder = json.loads(json.dumps(document["Records"][0]))
    folder["s3"]["object"]["key"] = "photos%2F2026%2F"
    removed = json.loads(json.dumps(folder))
    removed["eventName"] = "s3:ObjectRemoved:Delete"
    document["Records"] += [folder, removed]
    # when it is read
    parsed = read_message(json.dumps(document), bucket="customer-bucket")
    # then the file's create remains, and both folder records are skipped, named, not errors
    assert [(e.type, e.path) for e in parsed.events] == [("create", "photos/2026/team photo.jpg")]
    assert parsed.skipped == ["folder_marker", "folder_marker"]
