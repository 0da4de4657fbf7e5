"""The state CSV (SPEC §2): export from records, import back exactly, and diff two states.

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
from typing import Any

import pandas as pd

from sync_service.models.data_models import FileOperation, FileRecord
from sync_service.utils.paths import parent_folder

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


def _with_new_state(op: str, row: dict[Any, Any]) -> FileOperation:
    return FileOperation(op, int(row["id"]), str(row["path_new"]),
                         permissions=str(row["permissions_new"]), size=int(row["size_new"]),
                         etag=str(row["etag_new"]), last_modified=str(row["last_modified_new"]),
                         content_version=int(row["content_version_new"]))


def diff_states(old: pd.DataFrame, new: pd.DataFrame) -> list[FileOperation]:
    """The operations that turn state ``old`` into state ``new`` (frames as ``read`` returns).

    Joined on ``id``: only in new → create; only in old → delete; another path → rename (same
    folder) or move; another content_version → update; other permissions → update_permissions.
    A pure function: the order of the result is by id, not the order to apply (see planner).
    """
    merged = old.merge(new, on="id", how="outer", suffixes=("_old", "_new"), indicator=True)
    merged = merged[
        (merged["_merge"] != "both")
        | (merged["path_old"] != merged["path_new"])
        | (merged["content_version_old"] != merged["content_version_new"])
        | (merged["permissions_old"] != merged["permissions_new"])
    ]
    operations: list[FileOperation] = []
    rows: list[dict[Any, Any]] = merged.to_dict("records")
    for row in sorted(rows, key=lambda r: int(r["id"])):
        record_id = int(row["id"])
        if row["_merge"] == "left_only":
            operations.append(FileOperation("delete", record_id, str(row["path_old"])))
            continue
        path_new = str(row["path_new"])
        version_new = int(row["content_version_new"])
        permissions_new = str(row["permissions_new"])

        if row["_merge"] == "right_only":
            operations.append(_with_new_state("create", row))
            continue
        path_old = str(row["path_old"])
        if path_old != path_new:
            kind = "rename" if parent_folder(path_old) == parent_folder(path_new) else "move"
            operations.append(FileOperation(kind, record_id, path_old, path_new))
        if int(row["content_version_old"]) != version_new:
            operations.append(_with_new_state("update", row))
        if str(row["permissions_old"]) != permissions_new:
            operations.append(FileOperation("update_permissions", record_id, path_new,
                                            permissions=permissions_new))
    return operations


DIFF_COLUMNS = ["op", "record_id", "path", "new_path", "permissions", "content_version", "temp"]


def write_operations(operations: list[FileOperation], out: Path) -> Path:
    """Write a plan as CSV (one operation a row, in order)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        [(o.op, o.record_id, o.path, o.new_path, o.permissions, o.content_version, o.temp)
         for o in operations], columns=DIFF_COLUMNS)
    frame.to_csv(out, index=False, lineterminator="\r\n", encoding="utf-8")
    return out
