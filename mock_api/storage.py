"""Where the mock file manager keeps file content: a directory tree or an S3 bucket."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

#: Name of the scratch folder inside a DiskStorage root; never listed, never a valid target.
TMP_DIR_NAME = ".tmp"
#: Read size used when hashing files that are already stored.
HASH_CHUNK = 1024 * 1024
#: S3 user metadata is limited to 2 KB in total; larger permission documents stay in memory only.
MAX_METADATA_PERMISSIONS = 1800


class StorageConflict(Exception):
    """The target path cannot be stored because it collides with existing content."""


@dataclass
class FileRecord:
    """What the mock knows about one stored file."""

    size: int
    sha256: str
    permissions: dict[str, Any] | None = None


class Storage(Protocol):
    """Content store behind the mock API.

    With ``inline_io`` false every method may block and the app runs it in a worker thread; a
    backend whose calls are quick local-disk metadata changes sets it true, because a thread
    hop costs more CPU than the rename or unlink it would carry.
    """

    inline_io: bool

    @property
    def tmp_dir(self) -> Path:
        """Directory where uploads are spooled before they are committed."""
        ...

    def path_error(self, path: str) -> str | None:
        """Return a storage-specific reason why ``path`` cannot be stored, or None."""
        ...

    def scan(self) -> dict[str, FileRecord]:
        """Rebuild the index of stored files from the backing store."""
        ...

    def commit(self, tmp: Path, path: str, record: FileRecord) -> None:
        """Move the spooled upload ``tmp`` to ``path`` (replacing any old content); consumes ``tmp``."""
        ...

    def delete(self, path: str) -> None:
        """Remove the content stored at ``path`` (missing content is not an error)."""
        ...

    def move(self, src: str, dst: str) -> None:
        """Move content from ``src`` to ``dst``; ``dst`` is known not to exist."""
        ...

    def set_permissions(self, path: str, record: FileRecord) -> None:
        """Persist ``record.permissions`` for ``path`` where the backend can."""
        ...

    def read_bytes(self, path: str) -> bytes:
        """Return the content stored at ``path``."""
        ...

    def wipe(self) -> None:
        """Delete all stored content."""
        ...


def hash_file(path: Path) -> tuple[int, str]:
    """Return (size, sha256 hex) of the file at ``path``."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class DiskStorage:
    """Stores each file at ``root/<path>``; uploads are spooled in ``root/.tmp``."""

    #: Renames, mkdirs and unlinks on a local disk: run in the event loop (see ``Storage``).
    inline_io = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._tmp = self.root / TMP_DIR_NAME
        self._root_prefix = f"{self.root}{os.sep}"
        self._tmp_prefix = f"{self._tmp}{os.sep}"
        self.root.mkdir(parents=True, exist_ok=True)
        # Leftover spool files from a crashed run are garbage.
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir()

    @property
    def tmp_dir(self) -> Path:
        """Directory where uploads are spooled before they are committed."""
        return self._tmp

    def path_error(self, path: str) -> str | None:
        """Reject the reserved scratch folder and anything that would resolve outside the root."""
        if path.split("/", 1)[0] == TMP_DIR_NAME:
            return f"'{TMP_DIR_NAME}' is reserved"
        try:
            self._target(path)
        except ValueError as exc:
            return str(exc)
        return None

    def _target(self, path: str) -> Path:
        """Map ``path`` to its file, refusing anything outside the root (second guard after path_error)."""
        # String operations: Path.resolve and is_relative_to cost a third of a request's CPU.
        target = os.path.realpath(os.path.join(self._root_prefix, path))
        if not target.startswith(self._root_prefix):
            raise ValueError("resolves outside the storage root")
        if target.startswith(self._tmp_prefix) or target == str(self._tmp):
            raise ValueError(f"'{TMP_DIR_NAME}' is reserved")
        return Path(target)

    def scan(self) -> dict[str, FileRecord]:
        """Walk the root and hash every file (permissions are unknown after a restart)."""
        index: dict[str, FileRecord] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and TMP_DIR_NAME in dirnames:
                dirnames.remove(TMP_DIR_NAME)
            for name in filenames:
                full = Path(dirpath) / name
                if full.is_symlink() or not full.is_file():
                    continue
                size, sha = hash_file(full)
                index[full.relative_to(self.root).as_posix()] = FileRecord(size, sha)
        return index

    def commit(self, tmp: Path, path: str, record: FileRecord) -> None:
        """Atomically replace ``root/<path>`` with the spooled file."""
        target = self._target(path)
        try:
            self._place(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _place(self, src: Path, target: Path) -> None:
        """Rename ``src`` onto ``target``, creating parents; retries if a delete prunes them meanwhile."""
        for attempt in range(5):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, target)
                return
            except FileNotFoundError:
                # A concurrent delete may have removed an empty parent between mkdir and replace.
                if attempt == 4 or not src.exists():
                    raise
            except (NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
                raise StorageConflict("path collides with an existing file or folder") from exc

    def _prune(self, folder: Path) -> None:
        """Remove now-empty parent folders up to the root so a file may later take their name."""
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def delete(self, path: str) -> None:
        """Remove ``root/<path>`` and prune empty parents."""
        target = self._target(path)
        target.unlink(missing_ok=True)
        self._prune(target.parent)

    def move(self, src: str, dst: str) -> None:
        """Rename ``root/<src>`` to ``root/<dst>``."""
        source = self._target(src)
        self._place(source, self._target(dst))
        self._prune(source.parent)

    def set_permissions(self, path: str, record: FileRecord) -> None:
        """Nothing to do: on disk, permissions live only in the in-memory index."""

    def read_bytes(self, path: str) -> bytes:
        """Return the content of ``root/<path>``."""
        return self._target(path).read_bytes()

    def wipe(self) -> None:
        """Delete everything under the root except the spool folder (uploads may be in flight)."""
        for child in self.root.iterdir():
            if child == self._tmp:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


class S3Storage:
    """Stores each file as the object ``<path>`` in ``bucket``; sha256 and permissions go in user metadata."""

    #: Every call is a request to S3: run in a worker thread (see ``Storage``).
    inline_io = False

    def __init__(self, client: Any, bucket: str, tmp_dir: Path | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self._tmp = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.mkdtemp(prefix="mock-api-s3-"))
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._ensure_bucket()

    @property
    def tmp_dir(self) -> Path:
        """Directory where uploads are spooled before they are committed."""
        return self._tmp

    def _ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise
        region = self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        # us-east-1 is the one region that rejects an explicit LocationConstraint.
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self.client.create_bucket(**kwargs)

    def path_error(self, path: str) -> str | None:
        """Any valid file-manager path is a valid object key."""
        return None

    @staticmethod
    def _metadata(record: FileRecord) -> dict[str, str]:
        """User metadata for an object: its sha256 and, when small enough, its permissions."""
        meta = {"sha256": record.sha256}
        if record.permissions is not None:
            encoded = json.dumps(record.permissions, separators=(",", ":"), sort_keys=True)
            if len(encoded) <= MAX_METADATA_PERMISSIONS:
                meta["permissions"] = encoded
        return meta

    def scan(self) -> dict[str, FileRecord]:
        """List the bucket and read sha256/permissions from metadata (hashing objects that lack it)."""
        index: dict[str, FileRecord] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                head = self.client.head_object(Bucket=self.bucket, Key=key)
                meta = head.get("Metadata", {})
                sha = meta.get("sha256")
                if not sha:
                    sha = hashlib.sha256(self.read_bytes(key)).hexdigest()
                perms: dict[str, Any] | None = None
                if "permissions" in meta:
                    try:
                        loaded = json.loads(meta["permissions"])
                        perms = loaded if isinstance(loaded, dict) else None
                    except ValueError:
                        perms = None
                index[key] = FileRecord(int(obj["Size"]), sha, perms)
        return index

    def commit(self, tmp: Path, path: str, record: FileRecord) -> None:
        """Upload the spooled file as the object ``path`` and drop the spool file."""
        try:
            self.client.upload_file(str(tmp), self.bucket, path, ExtraArgs={"Metadata": self._metadata(record)})
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, path: str) -> None:
        """Delete the object ``path``."""
        self.client.delete_object(Bucket=self.bucket, Key=path)

    def move(self, src: str, dst: str) -> None:
        """Copy ``src`` to ``dst`` (metadata included) and delete ``src``."""
        self.client.copy_object(
            Bucket=self.bucket,
            Key=dst,
            CopySource={"Bucket": self.bucket, "Key": src},
            MetadataDirective="COPY",
        )
        self.client.delete_object(Bucket=self.bucket, Key=src)

    def set_permissions(self, path: str, record: FileRecord) -> None:
        """Rewrite the object's metadata in place so permissions survive a restart."""
        self.client.copy_object(
            Bucket=self.bucket,
            Key=path,
            CopySource={"Bucket": self.bucket, "Key": path},
            Metadata=self._metadata(record),
            MetadataDirective="REPLACE",
        )

    def read_bytes(self, path: str) -> bytes:
        """Return the object's content."""
        body = self.client.get_object(Bucket=self.bucket, Key=path)["Body"]
        data: bytes = body.read()
        return data

    def wipe(self) -> None:
        """Delete every object in the bucket."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
