"""Delivering one object's content from the bucket to the file manager, streamed."""

from __future__ import annotations

from collections.abc import Iterator

from sync_service.clients.infrastructure_api import InfrastructureAPI, SaveResult
from sync_service.clients.s3_manager import ObjectMeta, S3Manager, S3Object


def deliver_content(s3: S3Manager, api: InfrastructureAPI, path: str, *, target: str | None = None,
                    key: str) -> tuple[ObjectMeta, SaveResult]:
    """Stream the object at ``path`` into ``saveToDisk`` at ``target`` (default: ``path``).

    The first attempt reads the GET already open; a retry reads the object again, and only if
    it is still the version whose metadata the caller will record.
    """
    object_key = s3.key_of(path)
    first: list[S3Object] = [s3.open(object_key)]
    meta = first[0].meta

    def open_body() -> Iterator[bytes]:
        obj = first.pop() if first else s3.open(object_key, if_match=meta.etag)
        try:
            yield from obj.chunks()
        finally:
            obj.close()

    try:
        saved = api.save_to_disk(target or path, open_body, key=key)
    finally:
        for unread in first:
            unread.close()
    return meta, saved
