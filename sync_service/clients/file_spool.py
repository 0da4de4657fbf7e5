"""The ``file`` event source: a spool folder of ``*.jsonl`` files, one event per line.

Files are read in name order. The position is ``<file name>:<lines applied>``, stored in SQLite
in the same transaction as the records the lines changed; a fully applied file then moves to
``processed/``. After a crash between the commit and the move, the stored position makes the
file's applied lines be skipped, so nothing applies twice.

Writers should create a file under another name and rename it to ``*.jsonl`` when complete;
``publish`` does exactly that.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from sync_service.clients.event_source import MessageBatch
from sync_service.models.events import RawMessage


def parse_position(position: str | None) -> tuple[str, int]:
    """``("name.jsonl", lines)`` from a stored position ("" and 0 when none)."""
    if not position or ":" not in position:
        return "", 0
    name, _, lines = position.rpartition(":")
    return name, int(lines) if lines.isdigit() else 0


class FileSpoolSource:
    """Reads events from ``EVENTS_DIR``."""

    name = "file"

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.processed = self.folder / "processed"

    def pending_files(self) -> list[Path]:
        """The spool files not yet fully applied, in name order."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.jsonl") if p.is_file())

    def batches(self, position: str | None, max_messages: int) -> Iterator[MessageBatch]:
        """Yield up to ``max_messages`` lines at a time; a batch never spans two files."""
        done_name, done_lines = parse_position(position)
        for path in self.pending_files():
            skip = done_lines if path.name == done_name else 0
            batch: list[RawMessage] = []
            line_number = 0
            with path.open("r", encoding="utf-8", errors="replace", newline="\n") as handle:
                for line_number, line in enumerate(handle, start=1):
                    if line_number <= skip:
                        continue
                    text = line.rstrip("\r\n")
                    if text.strip():
                        batch.append(RawMessage(text, f"{path.name}:{line_number}"))
                    if len(batch) >= max_messages:
                        yield MessageBatch(batch, f"{path.name}:{line_number}", token=None)
                        batch = []
            yield MessageBatch(batch, f"{path.name}:{max(line_number, skip)}", token=path)

    def acknowledge(self, batch: MessageBatch, rejected: frozenset[str] = frozenset()) -> None:
        """Move a file whose last batch is committed to ``processed/``."""
        if isinstance(batch.token, Path) and batch.token.exists():
            self.processed.mkdir(parents=True, exist_ok=True)
            os.replace(batch.token, self.processed / batch.token.name)

    def describe(self) -> dict[str, object]:
        """The spool files waiting."""
        return {"source": "file", "folder": str(self.folder), "pending_files": len(self.pending_files())}

    def publish(self, body: str) -> str:
        """Write one event as a new spool file, atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        partial = self.folder / f".{name}.partial"
        partial.write_text(body.replace("\n", " ") + "\n", encoding="utf-8")
        os.replace(partial, self.folder / name)
        return str(self.folder / name)
