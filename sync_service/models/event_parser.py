"""Turning a message into events: the native shape, S3 notifications (AWS and MinIO), the
legacy shape of earlier deployments, and (``cloud_events``) GCS and Azure notifications.
Pure functions; a malformed message raises ``EventError`` (``models.events``, with the shapes
every reader builds: ``ParsedMessage``, ``build_event``, ``message_id``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus

from sync_service.models.cloud_events import is_cloud_message, read_cloud_message
from sync_service.models.events import Event, EventError, ParsedMessage, build_event, message_id

POSIX_MODE_CHARS = ("r-", "w-", "xsStT-")


META_PREFIX = "x-amz-meta-"


def parse_message(body: str, *, bucket: str = "", prefix: str = "") -> list[Event]:
    """The events in one message (none for an S3 test event or another bucket's records)."""
    return read_message(body, bucket=bucket, prefix=prefix).events


def read_message(body: str, *, bucket: str = "", prefix: str = "") -> ParsedMessage:
    """The events in one message, with what it skipped on purpose named (``folder_marker``,
    ``foreign_bucket``, ``outside_prefix``, ``test_event``)."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise EventError(f"bad JSON: {exc}") from None
    if is_cloud_message(document):
        return read_cloud_message(document, body, bucket=bucket, prefix=prefix)
    if not isinstance(document, dict):
        raise EventError("not a JSON object")
    if "Records" in document or "EventName" in document:
        return _from_notification(document, body, bucket=bucket, prefix=prefix)
    if document.get("Event") == "s3:TestEvent":
        return ParsedMessage([], skipped=["test_event"])  # S3 checking the configuration
    if "event_type" in document or "file_path" in document:
        return ParsedMessage([_from_legacy(document, body)])
    return ParsedMessage([_from_native(document, body)])


def _from_native(document: dict[str, Any], body: str) -> Event:
    if "type" not in document:
        raise EventError("missing field 'type'")
    return build_event(str(document.get("event_id") or message_id(body)), document["type"],
                  document.get("path"), document.get("new_path"), document.get("permissions"),
                  document.get("occurred_at", document.get("time")))


def posix_permissions(metadata: dict[str, Any], key: str) -> dict[str, str] | None:
    """``{"mode","owner","group"}`` from legacy metadata such as ``"rw-r--r--"``."""
    mode = metadata.get(key)
    if mode is None:
        return None
    if not isinstance(mode, str) or len(mode) != 9 or any(
            char not in POSIX_MODE_CHARS[i % 3] for i, char in enumerate(mode)):
        raise EventError(f"invalid POSIX permissions {mode!r}")
    found = {"mode": mode}
    for name in ("owner", "group"):
        if isinstance(metadata.get(name), str):
            found[name] = metadata[name]
    return found


def _legacy_path(value: Any) -> Any:
    return value.lstrip("/") if isinstance(value, str) else value


def _from_legacy(document: dict[str, Any], body: str) -> Event:
    metadata = document.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise EventError("'metadata' must be a JSON object")
    kind = document.get("event_type")
    permissions = posix_permissions(
        metadata, "new_permissions" if "new_permissions" in metadata else "permissions")
    return build_event(str(document.get("event_id") or message_id(body)), kind,
                  _legacy_path(document.get("file_path")),
                  _legacy_path(document.get("new_path")), permissions,
                  document.get("timestamp"))


def _from_notification(document: dict[str, Any], body: str, *, bucket: str,
                       prefix: str) -> ParsedMessage:
    records = document.get("Records")
    if not isinstance(records, list):
        raise EventError("'Records' must be a list")
    base_id = str(document.get("event_id") or message_id(body))
    parsed = ParsedMessage([])
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise EventError(f"record {index} is not an object")
        name = str(record.get("eventName", "")).removeprefix("s3:")
        s3 = record.get("s3") or {}
        record_bucket = (s3.get("bucket") or {}).get("name")
        if bucket and record_bucket and record_bucket != bucket:
            parsed.skipped.append("foreign_bucket")
            continue
        raw_key = (s3.get("object") or {}).get("key")
        if not isinstance(raw_key, str) or not raw_key:
            raise EventError(f"record {index} has no object key")
        key = unquote_plus(raw_key)
        if prefix and not key.startswith(prefix):
            parsed.skipped.append("outside_prefix")
            continue
        if name.startswith("ObjectCreated:"):
            kind = "create"
        elif name.startswith("ObjectRemoved:"):
            kind = "delete"
        else:
            continue  # other notifications (restore, tagging, ...) change nothing we track
        if key.endswith("/"):
            parsed.skipped.append("folder_marker")  # a console's folder, not a file (SPEC §5)
            continue
        described = s3.get("object") or {}
        sequencer = described.get("sequencer")
        event = build_event(f"{base_id}:{index}", kind, key[len(prefix):], None, None,
                       record.get("eventTime"))
        parsed.events.append(replace(event, sequencer=str(sequencer) if sequencer else None,
                                     **(_content_of(described) if kind == "create" else {})))
    return parsed


def _content_of(described: dict[str, Any]) -> dict[str, Any]:
    """Size, eTag and user metadata of a created object as its notification gives them, when
    it gives both size and eTag."""
    size, etag = described.get("size"), described.get("eTag")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return {}
    if not isinstance(etag, str) or not etag.strip('"'):
        return {}
    raw = described.get("userMetadata")
    metadata = {str(k)[len(META_PREFIX):] if str(k).lower().startswith(META_PREFIX) else str(k): str(v)
                for k, v in raw.items()} if isinstance(raw, dict) else None
    return {"size": size, "etag": etag.strip('"'), "metadata": metadata}


def sequencer_is_newer(candidate: str, applied: str) -> bool:
    """True when S3 sequencer ``candidate`` is later than ``applied`` for the same key.

    S3 documents the comparison: right-pad the shorter value with zeros, then compare as hex.
    """
    width = max(len(candidate), len(applied))
    return candidate.upper().ljust(width, "0") > applied.upper().ljust(width, "0")
