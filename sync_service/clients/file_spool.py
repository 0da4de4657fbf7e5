"""The ``file`` event source: a spool folder of ``*.jsonl`` files, one event per line.

Files are read in name order. The position names the file by its name *and* its content:
``<name>@<digest>:<lines applied>``, where the digest is the first 16 hex digits of the
file's sha256. It is stored in the database in the same transaction as the records the lines
changed; a fully applied file then moves to ``processed/`` under a name of its own
(``<stem>.<digest>[.<n>].jsonl``), so an earlier file of the same name is never overwritten.

So a producer may write ``events.jsonl`` again and again (SPEC §5): a file whose content differs
from the one the position names is a new file and is read from its first line. A batch may
take several files (one event a file is common); after a crash between its commit and the
moves, the file the position names is found again with its applied lines skipped, and the
earlier ones are read again and their messages skipped by their ids: nothing applies twice.
A file with exactly the content of one applied before carries the same messages, which replay
would skip by their ids anyway.

Writers should create a file under another name and rename it to ``*.jsonl`` when complete;
``publish`` does exactly that.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sync_service.clients.event_source import MessageBatch
from sync_service.models.events import RawMessage

DIGEST_CHARS = 16
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class SpoolPosition:
    """How far replay got: ``lines`` lines of the file ``name`` whose content has ``digest``
    (empty for a position stored before positions carried digests)."""

    name: str = ""
    digest: str = ""
    lines: int = 0

    def __str__(self) -> str:
        file = f"{self.name}@{self.digest}" if self.digest else self.name
        return f"{file}:{self.lines}"

    def names(self, name: str, digest: str) -> bool:
        """True when this position is in the file ``name`` with content ``digest``."""
        return self.name == name and (self.digest == digest or not self.digest)


@dataclass(frozen=True)
class _Claim:
    """The file a batch finished, as it was when read: moved only if it is still that file."""

    path: Path
    digest: str
    identity: tuple[int, int, int]


def parse_position(position: str | None) -> SpoolPosition:
    """The position stored as ``name@digest:lines`` (or the older ``name:lines``)."""
    if not position or ":" not in position:
        return SpoolPosition()
    file, _, lines = position.rpartition(":")
    name, at, digest = file.rpartition("@")
    if not at or len(digest) != DIGEST_CHARS or not set(digest) <= _HEX:
        name, digest = file, ""
    return SpoolPosition(name, digest, int(lines) if lines.isdigit() else 0)


def content_digest(handle: BinaryIO) -> str:
    """The first hex digits of the sha256 of an open file's content (read from the start)."""
    digest = hashlib.sha256()
    handle.seek(0)
    while chunk := handle.read(1024 * 1024):
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()[:DIGEST_CHARS]


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


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
        """Yield up to ``max_messages`` lines at a time, across files: a producer writing one
        event a file costs one batch (one transaction, one round of HEADs) for many files.

        The position names the file the batch ended in; a file read to its end goes with the
        batch and moves to ``processed/`` once that batch is committed. After a crash between
        the commit and the moves, a file the position does not name is read again from its
        first line, and replay skips its messages by their ids."""
        done = parse_position(position)
        batch: list[RawMessage] = []
        finished: list[_Claim] = []  # files read to their end since the last batch
        end: SpoolPosition | None = None
        for path in self.pending_files():
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                continue  # moved away since it was listed
            with handle:
                digest = content_digest(handle)
                claim = _Claim(path, digest, _identity(os.fstat(handle.fileno())))
                skip = done.lines if done.names(path.name, digest) else 0
                line_number = 0
                for line_number, raw in enumerate(handle, start=1):
                    if line_number <= skip:
                        continue
                    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    if text.strip():
                        batch.append(RawMessage(text, str(SpoolPosition(path.name, digest, line_number))))
                    if len(batch) >= max_messages:
                        at = SpoolPosition(path.name, digest, line_number)
                        yield MessageBatch(batch, str(at), token=tuple(finished))
                        batch, finished = [], []
                end = SpoolPosition(path.name, digest, max(line_number, skip))
                finished.append(claim)
        if end is not None:
            yield MessageBatch(batch, str(end), token=tuple(finished))

    def acknowledge(self, batch: MessageBatch, rejected: frozenset[str] = frozenset()) -> None:
        """Move the files a committed batch read to their end to ``processed/``, each under a
        name of its own; a file replaced since it was read stays, to be read as the new file
        it is."""
        claims = batch.token if isinstance(batch.token, tuple) else ()
        for claim in claims:
            if isinstance(claim, _Claim):
                self._move_applied(claim)

    def _move_applied(self, claim: _Claim) -> None:
        try:
            if _identity(claim.path.stat()) != claim.identity:
                return
        except FileNotFoundError:
            return
        self.processed.mkdir(parents=True, exist_ok=True)
        target = self._processed_name(claim.path, claim.digest)
        os.replace(claim.path, target)
        os.utime(target)  # retention counts from when it was applied, not written

    def _processed_name(self, path: Path, digest: str) -> Path:
        """``processed/<stem>.<digest>.jsonl``, or ``.<n>`` added until the name is free."""
        target = self.processed / f"{path.stem}.{digest}{path.suffix}"
        number = 1
        while target.exists():
            number += 1
            target = self.processed / f"{path.stem}.{digest}.{number}{path.suffix}"
        return target

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
