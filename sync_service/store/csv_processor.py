"""State CSV files (SPEC §2): written and read streaming, one record at a time.

UTF-8, header ``id,path,size,etag,last_modified,permissions,content_version``, RFC 4180 quoting
with CRLF line ends, rows ordered by id. Every value is written and read as text by the
standard ``csv`` module, so paths such as ``NA``, ``null`` or ``0012``, commas, quotes and
newlines come back unchanged, and memory stays flat whatever the number of rows.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from sync_service.models.data_models import FileOperation, FileRecord

COLUMNS = ["id", "path", "size", "etag", "last_modified", "permissions", "content_version"]
DIFF_COLUMNS = ["op", "record_id", "path", "new_path", "permissions", "content_version", "temp"]


class CSVProcessor:
    """Writes and reads state CSV files in one folder."""

    def __init__(self, export_dir: Path | str) -> None:
        self.export_dir = Path(export_dir)

    def export(self, records: Iterable[FileRecord], out: Path | str | None = None, *,
               name: str = "state") -> Path:
        """Write ``records`` (already ordered by id) to ``out`` or ``<export_dir>/<name>.csv``.

        Streamed to a temporary file that is renamed into place: a reader never sees half a file.
        """
        target = Path(out) if out is not None else self.export_dir / f"{name}.csv"
        rows = ((r.id, r.path, r.size, r.etag, r.last_modified, r.permissions, r.content_version)
                for r in records)
        return _write(target, COLUMNS, rows)

    @staticmethod
    def iter_records(path: Path | str) -> Iterator[FileRecord]:
        """The records of a state CSV, one at a time, exactly as written."""
        with Path(path).open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header != COLUMNS:
                raise ValueError(f"{path}: header is {header}, expected {COLUMNS}")
            for number, row in enumerate(reader, start=2):
                try:
                    id_, path_, size, etag, modified, perms, version = row
                    yield FileRecord(int(id_), path_, int(size), etag, modified, perms, int(version))
                except ValueError as exc:
                    raise ValueError(f"{path}: record {number} is not a state row: {exc}") from exc

    @classmethod
    def read_records(cls, path: Path | str) -> list[FileRecord]:
        """Every record of a state CSV (for small files and tests; see ``iter_records``)."""
        return list(cls.iter_records(path))


def write_operations(operations: Iterable[FileOperation], out: Path) -> Path:
    """Write a plan as CSV (one operation a row, in order)."""
    rows = ((o.op, o.record_id, o.path, o.new_path, o.permissions, o.content_version, o.temp)
            for o in operations)
    return _write(out, DIFF_COLUMNS, rows)


def _write(target: Path, header: list[str], rows: Iterable[Iterable[object]]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(partial, target)
    return target
