"""Events as the service understands them, whatever shape they arrived in (SPEC §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
