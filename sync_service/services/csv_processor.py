"""The state CSV (SPEC §2): export from records and import back, exactly.

UTF-8, header ``id,path,size,etag,last_modified,permissions,content_version``, RFC 4180 quoting
with CRLF line ends, rows ordered by id. Import reads every column as text with NA detection
off, so paths such as ``NA``, ``null`` or ``0012`` come back unchanged.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from dataclasses import astuple
from itertools import islice
from pathlib import Path

import pandas as pd

from sync_service.models.data_models import FileRecord

COLUMNS = ["id", "path", "size", "etag", "last_modified", "permissions", "content_version"]
EXPORT_CHUNK_ROWS = 50_000


def _chunks(records: Iterable[FileRecord], size: int) -> Iterator[list[FileRecord]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


class CSVProcessor:
    """Writes and reads state CSV files."""

    def __init__(self, export_dir: Path | str) -> None:
        self.export_dir = Path(export_dir)

    def export(self, records: Iterable[FileRecord], out: Path | str | None = None, *,
               name: str = "state") -> Path:
        """Write ``records`` (already ordered by id) to ``out`` or ``<export_dir>/<name>.csv``.

        Written in chunks to a temporary file that is renamed into place, so memory stays flat
        and a reader never sees half a file.
        """
        target = Path(out) if out is not None else self.export_dir / f"{name}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        with partial.open("w", encoding="utf-8", newline="") as handle:
            pd.DataFrame(columns=COLUMNS).to_csv(handle, index=False, lineterminator="\r\n")
            for chunk in _chunks(records, EXPORT_CHUNK_ROWS):
                frame = pd.DataFrame([astuple(r) for r in chunk], columns=COLUMNS)
                frame.to_csv(handle, index=False, header=False, lineterminator="\r\n",
                             quoting=csv.QUOTE_MINIMAL)
        os.replace(partial, target)
        return target

    @staticmethod
    def read(path: Path | str) -> pd.DataFrame:
        """Read a state CSV with every value as text, exactly as written."""
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                            encoding="utf-8")
        if list(frame.columns) != COLUMNS:
            raise ValueError(f"{path}: header is {list(frame.columns)}, expected {COLUMNS}")
        return frame

    @classmethod
    def read_records(cls, path: Path | str) -> list[FileRecord]:
        """Read a state CSV back into records."""
        frame = cls.read(path)
        return [
            FileRecord(int(id_), str(path_), int(size), str(etag), str(modified), str(perms), int(version))
            for id_, path_, size, etag, modified, perms, version in frame.itertuples(index=False, name=None)
        ]
