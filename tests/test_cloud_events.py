"""GCS Pub/Sub notifications and Azure Event Grid blob events as events (pure parsing)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sync_service.models.event_parser import EventError, read_message

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "events"


def fixture(name: str) -> str:
    # One line, as a spool file or a NATS message carries it.
    return json.dumps(json.loads((FIXTURES / name).read_text()))


def test_gcs_push_envelope_with_base64_resource_is_a_create() -> None:
    parsed = read_message(fixture("gcs-object-finalize-push.json"), bucket="customer-bucket")
    [event] = parsed.events
    assert (event.type, event.path) == ("create", "reports/q3 summary (final).pdf")
    assert event.event_id == "gcs:13279455213457"  # Pub/Sub's id: a redelivery applies once
    assert event.occurred_at == "2026-11-20T09:15:02.118Z"
    assert event.etag is None  # the processor HEADs it: the listing's ETag and the permissions


def test_gcs_pulled_delete_below_the_prefix() -> None:
    parsed = read_message(fixture("gcs-object-delete-pulled.json"), bucket="customer-bucket", prefix="old/")
    assert [(e.type, e.path) for e in parsed.events] == [("delete", "notes.txt")]


def test_gcs_delete_of_an_overwritten_version_is_skipped_and_counted() -> None:
    parsed = read_message(fixture("gcs-object-delete-overwritten.json"), bucket="customer-bucket")
    assert parsed.events == [] and parsed.skipped == ["overwritten"]


def test_gcs_metadata_update_is_a_create_and_resource_may_be_plain_json() -> None:
    body = json.dumps({"attributes": {"eventType": "OBJECT_METADATA_UPDATE", "bucketId": "b", "objectId": "a b+c%.txt"},
                       "data": {"name": "a b+c%.txt", "bucket": "b"}, "messageId": "7"})
    [event] = read_message(body, bucket="b").events
    assert (event.type, event.path) == ("create", "a b+c%.txt")  # objectId is not URL-encoded


def test_gcs_other_bucket_is_skipped_and_counted() -> None:
    parsed = read_message(fixture("gcs-object-finalize-push.json"), bucket="another-bucket")
    assert parsed.events == [] and parsed.skipped == ["other_bucket"]


@pytest.mark.parametrize(("body", "reason"), [
    ({"message": {"data": ""}}, "without 'attributes'"),
    ({"attributes": {"eventType": "OBJECT_EXPLODE", "objectId": "a"}}, "unknown GCS event type"),
    ({"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "b"}}, "without 'objectId'"),
    ({"attributes": {"eventType": "OBJECT_FINALIZE", "objectId": "a"}, "data": "not base64!"}, "not base64"),
    ({"attributes": {"eventType": "OBJECT_FINALIZE", "objectId": "../etc/passwd"}}, "invalid path"),
])
def test_malformed_gcs_messages_are_rejected_with_a_reason(body: dict[str, object], reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        read_message(json.dumps(body), bucket="b")


def test_azure_event_grid_array_creates_and_deletes() -> None:
    parsed = read_message(fixture("azure-eventgrid-blob-events.json"), bucket="customer-container")
    assert [(e.type, e.path, e.event_id) for e in parsed.events] == [
        ("create", "reports/q3 summary (final).pdf", "azure:831e1650-001e-001b-66ab-eeb76e069631"),
        ("delete", "old/notes.txt", "azure:831e1650-001e-001b-66ab-eeb76e069700"),
    ]
    assert parsed.events[0].occurred_at == "2026-11-20T09:15:02.1181Z"


def test_azure_cloudevents_schema() -> None:
    [event] = read_message(fixture("azure-cloudevent-blob-created.json"), bucket="customer-container").events
    assert (event.type, event.path) == ("create", "reports/q3 summary (final).pdf")
    assert event.occurred_at == "2026-11-20T09:15:02.1181Z"


def test_azure_single_event_other_container_and_folder_marker_are_counted() -> None:
    events = json.loads(fixture("azure-eventgrid-blob-events.json"))
    parsed = read_message(json.dumps(events[0]), bucket="elsewhere")
    assert parsed.events == [] and parsed.skipped == ["other_bucket"]
    marker = dict(events[0], subject="/blobServices/default/containers/customer-container/blobs/folder/")
    parsed = read_message(json.dumps(marker), bucket="customer-container")
    assert parsed.events == [] and parsed.skipped == ["folder_marker"]


def test_azure_subscription_validation_and_other_storage_events_change_nothing() -> None:
    validation = {"id": "1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "subject": "",
                  "data": {"validationCode": "512d38b6"}, "eventTime": "2026-11-20T09:15:02Z"}
    tier = {"id": "2", "eventType": "Microsoft.Storage.BlobTierChanged",
            "subject": "/blobServices/default/containers/c/blobs/a", "eventTime": "2026-11-20T09:15:02Z"}
    assert read_message(json.dumps([validation, tier]), bucket="c").events == []


@pytest.mark.parametrize(("body", "reason"), [
    ([], "not a JSON object"),
    ([1], "not a JSON object"),
    ([{"eventType": "Microsoft.Storage.BlobDeleted", "subject": "/blobServices/default/containers/c/blobs/a"}, 2],
     "event 1 of the array is not an object"),
    ({"eventType": "Microsoft.Storage.BlobCreated", "subject": "/containers/c/a"}, "subject must be"),
    ({"eventType": "Microsoft.Storage.BlobDeleted", "subject": "/blobServices/default/containers/c/blobs/"},
     "names no blob"),
    ({"specversion": "1.0", "type": "Microsoft.Nonsense", "subject": "x"}, "unknown Azure event type"),
])
def test_malformed_azure_events_are_rejected_with_a_reason(body: object, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        read_message(json.dumps(body), bucket="c")


def test_an_s3_notification_still_parses_as_before() -> None:
    body = (FIXTURES / "aws-object-created.json").read_text()
    [event] = read_message(body, bucket="customer-bucket").events
    assert event.path == "reports/q3 summary (final).pdf" and event.etag


def test_base64_is_strict() -> None:
    data = base64.b64encode(b'{"name": "x"}').decode() + "@@"
    with pytest.raises(EventError, match="not base64"):
        read_message(json.dumps({"attributes": {"eventType": "OBJECT_FINALIZE", "objectId": "x"}, "data": data}))
