"""Events as the service understands them, whatever shape they arrived in (SPEC §5)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sync_service.errors import SyncError
from sync_service.utils.paths import path_error

EVENT_TYPES = ("create", "delete", "rename", "move", "change_permission")


@dataclass(frozen=True)
class Event:
    """One change to apply to the stored state."""

    event_id: str
    type: str
    path: str
    new_path: str | None = None
    permissions: dict[str, Any] | None = None
    occurred_at: str | None = None
    sequencer: str | None = None
    # What an S3 notification already says of a created object (AWS and MinIO give size and
    # eTag; MinIO also the user metadata): enough to record it without a HEAD.
    size: int | None = None
    etag: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class RawMessage:
    """One message as a source delivered it, with where it came from."""

    body: str
    position: str


class EventError(SyncError):
    """A message that cannot be applied; it goes to the dead letters with this reason."""


def message_id(body: str) -> str:
    """The id of a message without one: a hash of its text, so a redelivery is recognised."""
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()[:40]


@dataclass
class ParsedMessage:
    """The events of one message, and why any of its records were skipped on purpose."""

    events: list[Event]
    skipped: list[str] = field(default_factory=list)


def _checked_path(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise EventError(f"missing field {field!r}")
    reason = path_error(value)
    if reason is not None:
        raise EventError(f"invalid {field} {value!r}: {reason}")
    return value


def _event_type(value: Any) -> str:
    if value not in EVENT_TYPES:
        raise EventError(f"unknown event type {value!r}")
    return str(value)


def build_event(event_id: str, kind: Any, path: Any, new_path: Any, permissions: Any,
                occurred_at: Any) -> Event:
    """An event from a message's fields, each checked; ``EventError`` names the bad one."""
    kind = _event_type(kind)
    checked = _checked_path(path, "path")
    target = _checked_path(new_path, "new_path") if kind in ("rename", "move") else None
    if kind == "change_permission" and not isinstance(permissions, dict):
        raise EventError("change_permission needs a 'permissions' object")
    if permissions is not None and not isinstance(permissions, dict):
        raise EventError("'permissions' must be a JSON object")
    return Event(event_id, kind, checked, target, permissions,
                 str(occurred_at) if occurred_at is not None else None)
