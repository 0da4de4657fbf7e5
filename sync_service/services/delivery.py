"""Delivering one object's content from the bucket to the file manager, streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sync_service.clients.infrastructure_api import FileManagerSession, SaveResult
from sync_service.clients.storage.base import ObjectMeta, ObjectSession, OpenObject


async def deliver_content(s3: ObjectSession, fm: FileManagerSession, key: str, target: str, *,
                          idempotency_key: str) -> tuple[ObjectMeta, SaveResult]:
    """Stream the object ``key`` into ``saveToDisk`` at ``target``.

    The first attempt reads the GET already open; a retry reads the object again, and only if
    it is still the version whose metadata the caller will record.
    """
    first: list[OpenObject] = [await s3.open(key)]
    meta = first[0].meta

    async def open_body() -> AsyncIterator[bytes]:
        obj = first.pop() if first else await s3.open(key, if_match=meta.etag)
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
