"""Google Cloud Storage and Azure Blob Storage change notifications as events (SPEC §5, §10).
Pure functions; a malformed message raises ``EventError``.

* GCS Pub/Sub notifications, JSON API payload format: the attributes ``eventType``
  (``OBJECT_FINALIZE`` and ``OBJECT_METADATA_UPDATE`` → create, ``OBJECT_DELETE`` → delete),
  ``bucketId``, ``objectId``, and the object resource as data (base64, as Pub/Sub carries it, or
  as JSON). Either the push envelope ``{"message": {"attributes", "data", "messageId"}}`` or a
  pulled message ``{"attributes", "data"}``. An ``OBJECT_DELETE`` carrying
  ``overwrittenByGeneration`` is the old version of an object just overwritten: its
  ``OBJECT_FINALIZE`` is the change, so it is skipped (and counted), never a delete.
  ``OBJECT_ARCHIVE`` (a versioned bucket keeping the old version) changes nothing we track.
* Azure Event Grid blob events, Event Grid schema (``eventType``, ``subject``, ``eventTime``,
  ``id``, ``data``; one object or an array of them) and CloudEvents 1.0 (``specversion``,
  ``type``, ``subject``, ``time``, ``id``): ``Microsoft.Storage.BlobCreated`` → create,
  ``Microsoft.Storage.BlobDeleted`` → delete; the container and blob name from the subject
  ``/blobServices/default/containers/<container>/blobs/<name>``.

Created objects are HEADed by the event processor, as for native events: neither store's
notification names the ETag the listing shows, and the HEAD brings the permissions metadata.
Another bucket's or container's events are skipped and counted (``other_bucket``), as are
folder markers (a name ending in '/').
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sync_service.models.events import EventError, ParsedMessage, build_event, message_id

GCS_EVENTS = {"OBJECT_FINALIZE": "create", "OBJECT_METADATA_UPDATE": "create", "OBJECT_DELETE": "delete"}
AZURE_EVENTS = {"Microsoft.Storage.BlobCreated": "create", "Microsoft.Storage.BlobDeleted": "delete"}
AZURE_SUBJECT = "/blobServices/default/containers/"


def is_cloud_message(document: Any) -> bool:
    """Whether a decoded message is a GCS or Azure notification (or an array of Azure ones)."""
    if isinstance(document, list):
        return bool(document) and isinstance(document[0], dict)  # else: "not a JSON object"
    if not isinstance(document, dict):
        return False
    if isinstance(document.get("message"), dict) or (
            isinstance(document.get("attributes"), dict) and "eventType" in document["attributes"]):
        return True
    kind = document.get("eventType", document.get("type") if "specversion" in document else None)
    return isinstance(kind, str) and kind.startswith("Microsoft.")


def read_cloud_message(document: Any, body: str, *, bucket: str = "", prefix: str = "") -> ParsedMessage:
    """The events of a GCS or Azure notification (``is_cloud_message`` said it is one)."""
    if isinstance(document, list):
        parsed = ParsedMessage([])
        for index, item in enumerate(document):
            if not isinstance(item, dict):
                raise EventError(f"event {index} of the array is not an object")
            one = _azure(item, body, index, bucket=bucket, prefix=prefix)
            parsed.events += one.events
            parsed.skipped += one.skipped
        return parsed
    if "message" in document or "attributes" in document:
        return _gcs(document, body, bucket=bucket, prefix=prefix)
    return _azure(document, body, 0, bucket=bucket, prefix=prefix)


def _relative(key: str, prefix: str, parsed: ParsedMessage) -> str | None:
    """The path of ``key`` below ``prefix``; None (counted when a folder marker) to skip it."""
    if prefix and not key.startswith(prefix):
        return None
    if key.endswith("/"):
        parsed.skipped.append("folder_marker")
        return None
    return key[len(prefix):]


def _gcs(document: dict[str, Any], body: str, *, bucket: str, prefix: str) -> ParsedMessage:
    message = document.get("message", document)
    if not isinstance(message, dict):
        raise EventError("'message' must be a JSON object")
    attributes = message.get("attributes")
    if not isinstance(attributes, dict):
        raise EventError("a Pub/Sub message without 'attributes'")
    resource = _gcs_resource(message.get("data"))
    kind = attributes.get("eventType")
    parsed = ParsedMessage([])
    if kind not in GCS_EVENTS:
        if kind in ("OBJECT_ARCHIVE",):
            return parsed  # a versioned bucket kept the old version: nothing we track changed
        raise EventError(f"unknown GCS event type {kind!r}")
    event_bucket = attributes.get("bucketId") or resource.get("bucket")
    if bucket and event_bucket and event_bucket != bucket:
        parsed.skipped.append("other_bucket")
        return parsed
    key = attributes.get("objectId") or resource.get("name")
    if not isinstance(key, str) or not key:
        raise EventError("a GCS notification without 'objectId'")
    if kind == "OBJECT_DELETE" and attributes.get("overwrittenByGeneration"):
        parsed.skipped.append("overwritten")  # its OBJECT_FINALIZE carries the change
        return parsed
    path = _relative(key, prefix, parsed)
    if path is None:
        return parsed
    event_id = message.get("messageId") or message.get("message_id") or document.get("event_id")
    occurred = attributes.get("eventTime") or resource.get("updated")
    parsed.events.append(build_event(f"gcs:{event_id}" if event_id else message_id(body), GCS_EVENTS[kind],
                                path, None, None, occurred))
    return parsed


def _gcs_resource(data: Any) -> dict[str, Any]:
    """The object resource a notification carries: base64 JSON, plain JSON, or none."""
    if data is None or data == "":
        return {}
    if isinstance(data, dict):
        return data
    if not isinstance(data, str):
        raise EventError("a Pub/Sub message's 'data' must be base64 text")
    try:
        decoded = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise EventError(f"a Pub/Sub message's 'data' is not base64 JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise EventError("a Pub/Sub message's 'data' is not a JSON object")
    return decoded


def _azure(document: dict[str, Any], body: str, index: int, *, bucket: str, prefix: str) -> ParsedMessage:
    cloud_event = "specversion" in document
    kind = document.get("type" if cloud_event else "eventType")
    parsed = ParsedMessage([])
    if kind == "Microsoft.EventGrid.SubscriptionValidationEvent":
        return parsed  # the handshake of a new subscription: nothing to apply
    if kind not in AZURE_EVENTS:
        if isinstance(kind, str) and kind.startswith("Microsoft.Storage."):
            return parsed  # tier changes, renames of ADLS folders, ...: nothing we track
        raise EventError(f"unknown Azure event type {kind!r}")
    subject = document.get("subject")
    if not isinstance(subject, str) or not subject.startswith(AZURE_SUBJECT) or "/blobs/" not in subject:
        raise EventError(f"an Azure blob event's subject must be {AZURE_SUBJECT}<container>/blobs/<name>, "
                         f"got {subject!r}")
    container, _, key = subject[len(AZURE_SUBJECT):].partition("/blobs/")
    if bucket and container != bucket:
        parsed.skipped.append("other_bucket")
        return parsed
    if not key:
        raise EventError("an Azure blob event names no blob")
    data = document.get("data") or {}
    if isinstance(data, dict) and data.get("api") == "CreateFile":
        return parsed  # ADLS: an empty file just made; its FlushWithClose brings the content
    path = _relative(key, prefix, parsed)
    if path is None:
        return parsed
    event_id = document.get("id")
    occurred = document.get("time" if cloud_event else "eventTime")
    parsed.events.append(build_event(f"azure:{event_id}" if event_id else f"{message_id(body)}:{index}",
                                AZURE_EVENTS[kind], path, None, None, occurred))
    return parsed
