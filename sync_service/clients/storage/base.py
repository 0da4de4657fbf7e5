"""The storage interface: what the planners, the executor, reconcile, ``check`` and ``status``
need of the bucket, whichever store holds it (S3, Google Cloud Storage, Azure Blob Storage).

Two halves, as in the S3 client they were drawn from: the control plane (listing pages,
folder-sized listings for events, a HEAD, a check), called from threads; and the data path, a
session opened on the executor's event loop (``async with store.connect() as session``) with an
async HEAD and a streamed GET. Errors are the service's own: ``StorageError`` for a failed
listing or check (the run stops), ``ObjectError`` for one object (its operation fails),
``ObjectGone`` for an object that is not there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from sync_service.clients.s3_data import CHUNK_SIZE, ObjectMeta
from sync_service.models.data_models import ObjectSummary

#: One listing page: the objects, the folders (with delimiter, each ending in '/'), and whether
#: more pages follow.
Page = tuple[list[ObjectSummary], list[str], bool]


class OpenObject(Protocol):
    """An open GET: the object's metadata and a body read once, in chunks."""

    meta: ObjectMeta

    def chunks(self, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Yield the body in chunks of at most ``size`` bytes."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class ObjectSession(Protocol):
    """The data path on one event loop: HEAD, streamed GET, and a check through the same way."""

    async def head(self, key: str) -> ObjectMeta:
        """Metadata of one object, user metadata (permissions) included."""
        ...

    async def open(self, key: str, *, if_match: str | None = None) -> OpenObject:
        """Start a streamed GET of one object (only of version ``if_match`` when given)."""
        ...

    async def check(self) -> None:
        """Reach the bucket as objects are read; raise StorageError or ObjectError if not."""
        ...


@runtime_checkable
class RangedSession(ObjectSession, Protocol):
    """A data path that can also read a byte range of one object (S3): large objects are then
    read in several ranged windows at once."""

    async def open_range(self, key: str, first: int, last: int, *,
                         if_match: str | None = None) -> OpenObject:
        """Start a streamed GET of the bytes ``first`` to ``last`` (inclusive) of one object."""
        ...


class ObjectStore(Protocol):
    """The bucket below an optional prefix, in any store."""

    bucket: str
    prefix: str

    def path_of(self, key: str) -> str:
        """The file path of ``key``: the key relative to the prefix."""
        ...

    def key_of(self, path: str) -> str:
        """The object key of a file ``path``."""
        ...

    def iter_pages(self, start_after: str = "") -> Iterator[list[ObjectSummary]]:
        """The listing below the prefix page by page, after ``start_after``."""
        ...

    def iter_scope(self, scope: str, *, start_after: str = "",
                   delimited: bool = False) -> Iterator[Page]:
        """The keys below the key prefix ``scope`` page by page, after ``start_after``;
        ``delimited``: only the keys directly below it, with its folders."""
        ...

    def first_entries(self, scope: str, points: list[str], *, delimited: bool = True) -> list[str]:
        """For each of ``points``, the first entry below ``scope`` after it, where there is one."""
        ...

    def listed(self, paths: Iterable[str]) -> tuple[dict[str, ObjectSummary], set[str]]:
        """What a listing shows of ``paths``: the summaries found, and the paths covered (a
        covered path without a summary is not in the bucket); the rest need a HEAD."""
        ...

    def head(self, key: str) -> ObjectMeta:
        """Metadata of one object."""
        ...

    def check(self) -> float:
        """Seconds the store takes to answer through the data path; raises StorageError."""
        ...

    def connect(self) -> AbstractAsyncContextManager[ObjectSession]:
        """A data-path session for the current event loop."""
        ...


class PrefixedKeys:
    """Paths are keys relative to the prefix (the part every store shares)."""

    prefix: str

    def path_of(self, key: str) -> str:
        """The file path of ``key``: the key relative to the prefix."""
        return key[len(self.prefix):] if self.prefix and key.startswith(self.prefix) else key

    def key_of(self, path: str) -> str:
        """The object key of a file ``path``."""
        return self.prefix + path


__all__ = ["ObjectMeta", "ObjectSession", "ObjectStore", "OpenObject", "Page", "PrefixedKeys"]
