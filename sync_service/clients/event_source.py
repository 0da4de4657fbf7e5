"""Where events come from: a small interface each backend implements (SPEC §5)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sync_service.models.events import RawMessage


@dataclass
class MessageBatch:
    """Messages read together; ``position`` is the source position after the last of them."""

    messages: list[RawMessage]
    position: str
    token: Any = field(default=None)


class EventSource(Protocol):
    """A source of raw messages, read in batches and acknowledged after each commit."""

    name: str

    def batches(self, position: str | None, max_messages: int) -> Iterator[MessageBatch]:
        """Yield unapplied messages after ``position`` (the one stored with the records)."""
        ...

    def acknowledge(self, batch: MessageBatch, rejected: frozenset[str] = frozenset()) -> None:
        """Called once the batch's changes, dead letters (the messages at the ``rejected``
        positions) and position are committed to the database."""
        ...

    def publish(self, body: str) -> str:
        """Publish one message; returns where it went."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the source holds, for ``status``."""
        ...


class MemorySource:
    """Messages held in memory: events the service makes itself (reconcile), never stored."""

    name = "memory"

    def __init__(self, bodies: list[str]) -> None:
        self.bodies = bodies

    def batches(self, position: str | None, max_messages: int) -> Iterator[MessageBatch]:
        """All the messages, in batches; ``position`` is ignored."""
        for start in range(0, len(self.bodies), max_messages):
            chunk = self.bodies[start:start + max_messages]
            yield MessageBatch([RawMessage(b, f"memory:{start + i}") for i, b in enumerate(chunk)],
                               f"memory:{start + len(chunk)}")

    def acknowledge(self, batch: MessageBatch, rejected: frozenset[str] = frozenset()) -> None:
        """Nothing to acknowledge."""

    def publish(self, body: str) -> str:
        """Keep one more message."""
        self.bodies.append(body)
        return "memory"

    def describe(self) -> dict[str, Any]:
        """How many messages are held."""
        return {"source": "memory", "messages": len(self.bodies)}
