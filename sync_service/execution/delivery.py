"""Delivering one object's content from the bucket to the file manager, streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sync_service.clients.infrastructure_api import INLINE_BODY_BYTES, FileManagerSession, SaveResult
from sync_service.clients.ranged_reads import RangeBody, RangedGets, windowed_chunks
from sync_service.clients.storage.base import ObjectMeta, ObjectSession, OpenObject, RangedSession


async def deliver_content(s3: ObjectSession, fm: FileManagerSession, key: str, target: str, *,
                          idempotency_key: str,
                          ranged: RangedGets | None = None,
                          size_hint: int | None = None) -> tuple[ObjectMeta, SaveResult]:
    """Stream the object ``key`` into ``saveToDisk`` at ``target``.

    The first attempt reads the GET already open; a retry reads the object again, and only if
    it is still the version whose metadata the caller will record. An object that ``ranged``
    applies to is read in ranged windows instead, several at once, of that version only.
    """
    first: list[OpenObject] = [await _open(s3, key, size_hint)]
    meta = first[0].meta
    if ranged is not None and ranged.applies_to(meta.size) and isinstance(s3, RangedSession):
        ranged_s3 = s3
        first.pop().close()  # its headers told the size and version; the windows read the bytes

        async def open_window(start: int, end: int) -> RangeBody:
            return await ranged_s3.open_range(key, start, end, if_match=meta.etag)

        async def open_windows() -> AsyncIterator[bytes]:
            async for chunk in windowed_chunks(open_window, meta.size, ranged):
                yield chunk

        saved = await fm.save_to_disk(target, open_windows, key=idempotency_key, size=meta.size)
        return meta, saved

    async def open_body() -> AsyncIterator[bytes]:
        obj = first.pop() if first else await _open(s3, key, meta.size, if_match=meta.etag)
        try:
            async for chunk in obj.chunks():
                yield chunk
        finally:
            obj.close()

    try:
        saved = await fm.save_to_disk(target, open_body, key=idempotency_key, size=meta.size)
    finally:
        for unread in first:
            unread.close()
    return meta, saved


async def _open(s3: ObjectSession, key: str, size_hint: int | None, *,
                if_match: str | None = None) -> OpenObject:
    """Open a GET of ``key``: one expected to be sent as one buffer (``size_hint``, the size
    listed, up to ``INLINE_BODY_BYTES``) read whole where the session can (the S3 data path's
    lean client), the rest streamed."""
    open_small = getattr(s3, "open_small", None)
    if open_small is not None and size_hint is not None and size_hint <= INLINE_BODY_BYTES:
        opened: OpenObject = await open_small(key, max_size=INLINE_BODY_BYTES, if_match=if_match)
        return opened
    return await s3.open(key, if_match=if_match)
