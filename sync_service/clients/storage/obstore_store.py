"""Google Cloud Storage and Azure Blob Storage behind the storage interface, through obstore
(the Rust ``object_store`` crate: one async API, its own signers and credential chains, its
own retries of 5xx, throttling and connection errors with backoff, ``max_retries`` of them).

What the stores do not offer is done here, plainly:

* listings go through each store's own API (``listing.py``): obstore fails a whole listing on
  one name it cannot parse (``a//b``, a ``..`` segment); names come back raw, folder markers
  with their '/', and the planners skip and count the invalid ones as on S3;
* a delimited listing after a key (Azure's API has none, GCS's emulator ignores it): the
  folder's direct entries are listed in full and those up to ``start_after`` dropped; a
  folder's direct entries are held at once, a prefix listing one page at a time;
* ``listed`` (a folder listing instead of a HEAD per event) covers nothing: events on these
  stores HEAD each created path.

obstore's exceptions are translated here: ``NotFoundError`` is ``ObjectGone``, anything else
about one object an ``ObjectError``, about a listing or the check a ``StorageError``.
"""

from __future__ import annotations

import atexit
import gc
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import InvalidPathError, PermissionDeniedError, PreconditionError, UnauthenticatedError

from sync_service.clients.s3_data import CHUNK_SIZE, ObjectMeta
from sync_service.clients.storage.base import ObjectSession, Page, PrefixedKeys
from sync_service.clients.storage.listing import Listed, RawListing, RawPage
from sync_service.errors import ObjectError, ObjectGone, StorageError
from sync_service.models.data_models import ObjectSummary, iso_utc

if TYPE_CHECKING:
    from obstore import GetOptions

LIST_PAGE_SIZE = 1000
_open_stores: weakref.WeakSet[ObstoreStore] = weakref.WeakSet()
#: obstore's attributes that are not user metadata.
_STANDARD_ATTRIBUTES = frozenset({"content-type", "content-encoding", "content-disposition",
                                  "content-language", "cache-control"})


def translate(exc: Exception, what: str, *, one_object: bool = False) -> StorageError:
    """obstore's exception as the service's own (``ObjectError`` when about ``one_object``)."""
    if isinstance(exc, FileNotFoundError):
        return ObjectGone(f"{what}: not found")
    if isinstance(exc, PreconditionError):
        return ObjectError(f"{what}: changed since it was listed")
    kind = ObjectError if one_object else StorageError
    denied = isinstance(exc, PermissionDeniedError | UnauthenticatedError)
    # obstore's messages carry the request and the server's answer: the first line says it.
    return kind(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                retryable=not denied)


def _etag(value: object) -> str:
    return str(value or "").strip('"')


def object_meta(key: str, meta: Any, attributes: Any) -> ObjectMeta:
    """An ``ObjectMeta`` from obstore's meta and attributes (user metadata, any case)."""
    return ObjectMeta(key=key, size=int(meta["size"]), etag=_etag(meta.get("e_tag")),
                      last_modified=iso_utc(meta["last_modified"]),
                      metadata={str(k): str(v) for k, v in (attributes or {}).items()
                                if str(k).lower() not in _STANDARD_ATTRIBUTES})


class ObstoreObject:
    """An open GET through obstore."""

    def __init__(self, meta: ObjectMeta, result: Any) -> None:
        self.meta = meta
        self._result = result

    async def chunks(self, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Yield the body in chunks of about ``size`` bytes."""
        try:
            async for chunk in self._result.stream(min_chunk_size=size):
                yield bytes(chunk)
        except Exception as exc:  # obstore raises its own and OSError subclasses
            raise ObjectError(f"reading {self.meta.key!r} failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Drop the response (obstore releases its connection)."""
        self._result = None


class ObstoreSession:
    """The data path of an ``ObstoreStore`` (obstore keeps its own connection pool)."""

    def __init__(self, store: ObstoreStore) -> None:
        self.store = store

    async def __aenter__(self) -> ObstoreSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None

    async def head(self, key: str) -> ObjectMeta:
        """Metadata of one object, user metadata included (a HEAD, as a GET without body)."""
        try:
            result = await obstore.get_async(self.store.client, key, options={"head": True})
        except Exception as exc:
            raise translate(exc, f"HEAD {key!r}", one_object=True) from exc
        return object_meta(key, result.meta, result.attributes)

    async def open(self, key: str, *, if_match: str | None = None) -> ObstoreObject:
        """Start a streamed GET of one object (only of version ``if_match`` when given)."""
        options: GetOptions = {"if_match": f'"{if_match}"'} if if_match else {}
        try:
            result = await obstore.get_async(self.store.client, key, options=options or None)
        except Exception as exc:
            raise translate(exc, f"GET {key!r}", one_object=True) from exc
        meta = object_meta(key, result.meta, result.attributes)
        if if_match and meta.etag != if_match:  # fake-gcs-server ignores If-Match
            raise ObjectError(f"GET {key!r}: changed since it was listed (etag {meta.etag})")
        return ObstoreObject(meta, result)

    async def check(self) -> None:
        """List one key below the prefix: reachable, and the credentials may read."""
        try:
            stream = obstore.list(self.store.client, self.store.prefix or None, chunk_size=1)
            async for _ in stream:
                break
        except InvalidPathError:
            return  # the store answered, with a name obstore cannot hold: reached and readable
        except Exception as exc:
            raise translate(exc, f"listing {self.store.bucket!r}") from exc


@atexit.register
def release_clients() -> None:
    """Drop every obstore client before the interpreter's finalization: one dropped during it
    aborts the process now and then (SIGABRT after the work was done: 7 exits in 12 of a
    script that read 40 × 8 MiB; none in 12 with the client dropped first)."""
    for store in list(_open_stores):
        store.client = None
    gc.collect()


class ObstoreStore(PrefixedKeys):
    """A bucket or container of GCS or Azure (any obstore store) below an optional prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, scheme: str,
                 page_size: int = LIST_PAGE_SIZE, listing: RawListing | None = None) -> None:
        self.client = client
        #: The store's own listing (names raw); obstore's when none is given (a MemoryStore).
        self.listing: RawListing = listing if listing is not None else ObstoreListing(self)
        self.bucket = bucket
        self.prefix = prefix
        self.scheme = scheme  # gs or az, for messages
        self.page_size = page_size
        _open_stores.add(self)

    def _summary(self, item: Listed) -> ObjectSummary:
        return ObjectSummary(key=item.key, path=self.path_of(item.key), size=item.size,
                             etag=_etag(item.etag), last_modified=iso_utc(item.last_modified))

    def iter_pages(self, start_after: str = "") -> Iterator[list[ObjectSummary]]:
        """The listing below the prefix page by page, after ``start_after``."""
        for summaries, _, _ in self.iter_scope(self.prefix, start_after=start_after):
            yield summaries

    def iter_scope(self, scope: str, *, start_after: str = "",
                   delimited: bool = False) -> Iterator[Page]:
        """The keys below ``scope`` page by page, after ``start_after``; ``delimited``: only
        the keys directly below it, with its folders (each ending in '/')."""
        what = f"listing {self.scheme}://{self.bucket}/{scope}"
        try:
            if delimited:
                yield from self._delimited(scope, start_after)
                return
            pages = self.listing.pages(scope, start_after=start_after, page_size=self.page_size)
            # One page ahead, to tell whether more follow.
            held: list[ObjectSummary] | None = None
            for objects, _ in pages:
                # Not every store starts after a key (Azure, the GCS emulator): dropped here.
                summaries = [self._summary(item) for item in objects if item.key > start_after]
                if held is not None:
                    yield held, [], True
                held = summaries
            yield held or [], [], False
        except StorageError:
            raise
        except Exception as exc:
            raise translate(exc, what) from exc

    def _delimited(self, scope: str, start_after: str) -> Iterator[Page]:
        entries: list[tuple[str, ObjectSummary | None]] = []
        for objects, folders in self.listing.pages(scope, delimiter="/", page_size=self.page_size):
            entries += [(item.key, self._summary(item)) for item in objects]
            entries += [(folder, None) for folder in folders]
        entries = sorted((e for e in entries if e[0] > start_after), key=lambda e: e[0])
        if not entries:
            yield [], [], False
        for start in range(0, len(entries), self.page_size):
            part = entries[start:start + self.page_size]
            yield ([s for _, s in part if s is not None], [k for k, s in part if s is None],
                   start + self.page_size < len(entries))

    def first_entries(self, scope: str, points: list[str], *, delimited: bool = True) -> list[str]:
        """For each of ``points``, the first entry below ``scope`` after it, where there is one."""
        found = []
        for point in points:
            for page, folders, _ in self.iter_scope(scope, start_after=point, delimited=delimited):
                entries = [s.key for s in page[:1]] + folders[:1]
                if entries:
                    found.append(min(entries))
                break
        return found

    def listed(self, paths: Iterable[str]) -> tuple[dict[str, ObjectSummary], set[str]]:
        """Covers nothing: every path an event names gets a HEAD (see the module's docstring)."""
        return {}, set()

    def head(self, key: str) -> ObjectMeta:
        """Metadata of one object, user metadata included."""
        try:
            result = obstore.get(self.client, key, options={"head": True})
        except Exception as exc:
            raise translate(exc, f"HEAD {key!r}", one_object=True) from exc
        return object_meta(key, result.meta, result.attributes)

    def check(self) -> float:
        """Seconds a one-key listing below the prefix takes (obstore serves listings and
        transfers with one client, one credential chain); raises StorageError."""
        started = time.monotonic()
        try:
            for _ in obstore.list(self.client, self.prefix or None, chunk_size=1):
                break
        except InvalidPathError:
            pass  # the store answered, with a name obstore cannot hold: reached and readable
        except Exception as exc:
            raise translate(exc, f"listing {self.scheme}://{self.bucket}/{self.prefix}") from exc
        return time.monotonic() - started

    def connect(self) -> AbstractAsyncContextManager[ObjectSession]:
        """A data-path session for the current event loop."""
        return ObstoreSession(self)


class ObstoreListing:
    """obstore's own listing, for stores listed no other way (a ``MemoryStore`` in tests): it
    fails on a name ``object_store`` cannot parse, and names folders without their '/'."""

    def __init__(self, store: ObstoreStore) -> None:
        self.store = weakref.proxy(store)  # the store holds this: no cycle keeping its client

    def pages(self, prefix: str, *, start_after: str = "", delimiter: str = "",
              page_size: int = LIST_PAGE_SIZE) -> Iterator[RawPage]:
        """obstore's pages below ``prefix`` after ``start_after``."""
        if delimiter:
            found = obstore.list_with_delimiter(self.store.client, prefix or None)
            yield ([_listed(item) for item in found["objects"]],
                   [f"{folder}/" for folder in found["common_prefixes"]])
            return
        for page in obstore.list(self.store.client, prefix or None, offset=start_after or None,
                                 chunk_size=page_size):
            yield [_listed(item) for item in page], []


def _listed(item: Any) -> Listed:
    return Listed(str(item["path"]), int(item["size"]), str(item.get("e_tag") or ""), item["last_modified"])
