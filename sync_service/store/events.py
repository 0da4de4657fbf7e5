"""What event replay keeps: applied event ids, S3 sequencers per key, dead letters, and the
position of each source."""

from __future__ import annotations

from typing import Any

from sync_service.store.database import Database
from sync_service.store.runs import RunStore
from sync_service.utils.redaction import redact


class EventStore:
    """Reads and changes ``applied_events``, ``key_sequencers`` and ``dead_letters``."""

    def __init__(self, db: Database, runs: RunStore) -> None:
        self.db = db
        self.runs = runs

    def was_applied(self, event_id: str) -> bool:
        """True when an event with this id has been applied before."""
        return bool(self.db.execute("SELECT 1 FROM applied_events WHERE event_id = ?",
                                    (event_id,)).fetchone())

    def mark_applied(self, event_id: str, applied_at: str) -> None:
        """Remember that an event was applied (inside the replay's transaction)."""
        self.db.execute("INSERT INTO applied_events (event_id, applied_at) VALUES (?, ?)",
                        (event_id, applied_at))

    def sequencer(self, path: str) -> str | None:
        """The newest S3 sequencer applied for ``path``."""
        row = self.db.execute("SELECT sequencer FROM key_sequencers WHERE path = ?", (path,)).fetchone()
        return str(row[0]) if row else None

    def set_sequencer(self, path: str, sequencer: str) -> None:
        """Remember the newest S3 sequencer applied for ``path``."""
        self.db.execute("INSERT INTO key_sequencers (path, sequencer) VALUES (?, ?) ON CONFLICT "
                        "(path) DO UPDATE SET sequencer = excluded.sequencer", (path, sequencer))

    def prune_applied(self, before: str) -> int:
        """Forget event ids applied before ``before`` (ISO-8601): no redelivery can come now."""
        with self.db.transaction():
            return int(self.db.execute("DELETE FROM applied_events WHERE applied_at < ?",
                                       (before,)).rowcount)

    def prune_dead_letters(self, before: str) -> int:
        """Forget dead letters stored before ``before`` (ISO-8601)."""
        with self.db.transaction():
            return int(self.db.execute("DELETE FROM dead_letters WHERE created_at < ?",
                                       (before,)).rowcount)

    def add_dead_letter(self, source: str, position: str, reason: str, raw: str) -> None:
        """Keep a rejected message with its reason (both redacted: a message may carry anything)."""
        self.db.execute("INSERT INTO dead_letters (source, position, reason, raw) VALUES (?, ?, ?, ?)",
                        (source, position, redact(reason), redact(raw)))

    def dead_letter_count(self) -> int:
        """How many messages were rejected into the dead letters."""
        return int(self.db.query("SELECT count(*) FROM dead_letters")[0][0])

    def recent_dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest dead letters, newest first: source, position, reason, the raw message."""
        rows = self.db.query("SELECT id, source, position, reason, raw, created_at FROM dead_letters "
                             "ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(zip(("id", "source", "position", "reason", "raw", "at"), row, strict=True))
                for row in rows]

    def position(self, key: str) -> str | None:
        """Where replay stands in a source."""
        return self.runs.get_setting(key)

    def set_position(self, key: str, position: str) -> None:
        """Store where replay stands in a source (inside the replay's transaction)."""
        self.runs.set_setting(key, position)
