"""File records (what the bucket holds, as the service learnt it) and their dirty marks.

A record is **dirty** while the file manager may hold something else for it: every change to a
record marks it, and the mark goes once the baseline equals the record again. The dirty ids are
what an incremental cycle plans, so its cost follows its events, not the bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sync_service.models.data_models import FileRecord
from sync_service.store.database import Database, now_iso

LOOKUP_CHUNK = 500
COLUMNS_SQL = "id, path, size, etag, last_modified, permissions, content_version"

# The one upsert of records: a new path gets a new id; another etag is a new content version.
_UPSERT = """
INSERT INTO files (path, size, etag, last_modified, permissions, content_version, synced_at)
VALUES {values}
ON CONFLICT (path) DO UPDATE SET
    content_version = files.content_version + CASE WHEN files.etag != excluded.etag THEN 1 ELSE 0 END,
    size = excluded.size,
    etag = excluded.etag,
    last_modified = excluded.last_modified,
    permissions = excluded.permissions,
    synced_at = excluded.synced_at
RETURNING id, path
"""
#: Rows written by one multi-row statement (SQLite allows 32766 values in one).
WRITE_CHUNK = 500


class RecordStore:
    """Reads and changes the ``files`` table and the ``dirty`` marks."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading -----------------------------------------------------------------------------

    def count(self) -> int:
        """How many files are recorded."""
        return int(self.db.query("SELECT count(*) FROM files")[0][0])

    def get(self, path: str) -> FileRecord | None:
        """The record at ``path``, if any."""
        rows = self.db.query(f"SELECT {COLUMNS_SQL} FROM files WHERE path = ?", (path,))
        return FileRecord(*rows[0]) if rows else None

    def lookup(self, paths: list[str]) -> dict[str, FileRecord]:
        """The records of those ``paths`` that exist, by path."""
        found: dict[str, FileRecord] = {}
        for start in range(0, len(paths), LOOKUP_CHUNK):
            chunk = paths[start:start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(f"SELECT {COLUMNS_SQL} FROM files WHERE path IN ({marks})", chunk):
                found[row[1]] = FileRecord(*row)
        return found

    def iter_all(self, table: str = "files", batch: int = 10_000) -> Iterator[FileRecord]:
        """Every row of ``files`` (or ``baseline``) ordered by id, read in batches."""
        last_id = 0
        while True:
            rows = self.db.query(f"SELECT {COLUMNS_SQL} FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                                 (last_id, batch))
            if not rows:
                return
            for row in rows:
                yield FileRecord(*row)
            last_id = rows[-1][0]

    def iter_by_path(self, batch: int = 10_000) -> Iterator[FileRecord]:
        """Every record ordered by path (the order of an S3 listing), read in batches."""
        # Two statements, not one with "path > ? OR first": an OR keeps SQLite off the path
        # index, and every batch would sort the whole table.
        rows = self.db.query(f"SELECT {COLUMNS_SQL} FROM files ORDER BY path LIMIT ?", (batch,))
        while rows:
            for row in rows:
                yield FileRecord(*row)
            rows = self.db.query(f"SELECT {COLUMNS_SQL} FROM files WHERE path > ? ORDER BY path LIMIT ?",
                                 (rows[-1][1], batch))

    def rows_of(self, ids: Iterable[int], table: str = "files") -> Iterator[FileRecord]:
        """The rows of ``files`` (or ``baseline``) with those ids that exist, ordered by id."""
        ordered = sorted(set(ids))
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            chunk = ordered[start:start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(
                    f"SELECT {COLUMNS_SQL} FROM {table} WHERE id IN ({marks}) ORDER BY id", chunk):
                yield FileRecord(*row)

    def dirty_ids(self) -> list[int]:
        """Ids of records whose file-manager copy may differ from the record, but for those
        with an operation still pending (applying it comes first)."""
        return [int(row[0]) for row in self.db.query(
            "SELECT id FROM dirty WHERE id NOT IN (SELECT record_id FROM operations "
            "WHERE status = 'pending' AND record_id IS NOT NULL) ORDER BY id")]

    # -- changing (inside the caller's transaction, or one of their own) ----------------------

    def upsert(self, path: str, size: int, etag: str, last_modified: str, permissions: str) -> int:
        """Record what is known of the object at ``path``; marks it dirty; returns its id."""
        return self.upsert_many([(path, size, etag, last_modified, permissions)])[path]

    def upsert_many(self, rows: Iterable[tuple[str, int, str, str, str]]) -> dict[str, int]:
        """Record what is known of many objects (path, size, etag, last modified, permissions;
        each path once) in a few set-based statements; marks them dirty; returns their ids by
        path."""
        now = now_iso()
        ids: dict[str, int] = {}
        values = list({row[0]: (*row, now) for row in rows}.values())  # a path once a statement
        with self.db.transaction():
            for start in range(0, len(values), WRITE_CHUNK):
                chunk = values[start:start + WRITE_CHUNK]
                sql = _UPSERT.format(values=", ".join(["(?, ?, ?, ?, ?, 1, ?)"] * len(chunk)))
                for record_id, path in self.db.query(sql, [v for row in chunk for v in row]):
                    ids[path] = int(record_id)
            self.mark_dirty(ids.values())
        return ids

    def delete(self, path: str) -> int | None:
        """Remove the record at ``path``; returns its id (None: there was none)."""
        with self.db.transaction():
            row = self.db.execute("DELETE FROM files WHERE path = ? RETURNING id", (path,)).fetchone()
            if row is None:
                return None
            self.mark_dirty((int(row[0]),))
            return int(row[0])

    def move(self, path: str, new_path: str) -> int | None:
        """Give the record at ``path`` the path ``new_path`` (a record there is replaced)."""
        with self.db.transaction():
            row = self.db.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
            if row is None:
                return None
            if new_path != path:
                self.delete(new_path)
                self.db.execute("UPDATE files SET path = ? WHERE id = ?", (new_path, row[0]))
                self.mark_dirty((int(row[0]),))
            return int(row[0])

    def set_permissions(self, path: str, permissions: str) -> int | None:
        """Replace the permissions of the record at ``path``; returns its id, if there is one."""
        with self.db.transaction():
            row = self.db.execute("UPDATE files SET permissions = ? WHERE path = ? RETURNING id",
                                  (permissions, path)).fetchone()
            if row is None:
                return None
            self.mark_dirty((int(row[0]),))
            return int(row[0])

    def adopt(self, created: FileRecord, original: FileRecord) -> None:
        """The record ``created`` (new in this replay) is ``original`` (deleted in it) moved:
        it takes the original's id, content version and, when its own are not known, its
        permissions; the id it had never reached the file manager."""
        with self.db.transaction():
            self.db.execute("DELETE FROM files WHERE id = ?", (created.id,))
            self.db.execute("DELETE FROM dirty WHERE id = ?", (created.id,))
            self.db.execute(
                f"INSERT INTO files ({COLUMNS_SQL}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (original.id, created.path, created.size, created.etag, created.last_modified,
                 created.permissions or original.permissions, original.content_version))
            self.mark_dirty((original.id,))

    def mark_dirty(self, ids: Iterable[int]) -> None:
        """Mark records as possibly different in the file manager."""
        self.db.executemany("INSERT INTO dirty (id) VALUES (?) ON CONFLICT DO NOTHING",
                            ((i,) for i in ids))

    # -- drift scans: which records a listing did not show -----------------------------------

    def start_scan(self) -> None:
        """Begin remembering the paths a listing shows (a scratch table of this run)."""
        self.db.create_scratch_table("seen", "path TEXT PRIMARY KEY")

    def saw(self, paths: Iterable[str]) -> None:
        """Remember paths the listing showed."""
        self.db.executemany("INSERT INTO seen (path) VALUES (?) ON CONFLICT DO NOTHING",
                            ((p,) for p in paths))

    def unseen(self) -> list[str]:
        """Paths of records the listing did not show, in order; ends the scan."""
        paths = [row[0] for row in self.db.query(
            "SELECT path FROM files WHERE path NOT IN (SELECT path FROM seen) ORDER BY path")]
        self.db.execute("DELETE FROM seen")
        return paths
