"""The diff of two states (SPEC §2): a merge of two sequences of records ordered by id.

A pure function over iterables, so neither side is ever held whole: joined on ``id``, only in
new → ``create``; only in old → ``delete``; another path → ``rename`` (same folder) or
``move``; another content version → ``update``; other permissions → ``update_permissions``.

A record whose permissions are empty has permissions not known yet (planned from a listing,
which carries no metadata): its content operation reads them from the object, or, when the
content is unchanged, an ``update_permissions`` without permissions reads them with a HEAD.
The result is in id order, not the order to apply (see ``planner.plan_operations``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sync_service.models.data_models import FileOperation, FileRecord
from sync_service.utils.paths import move_kind

_END = FileRecord(0, "", 0, "", "", "", 0)


def diff_records(old: Iterable[FileRecord], new: Iterable[FileRecord]) -> Iterator[FileOperation]:
    """The operations that turn state ``old`` into state ``new`` (both ordered by id)."""
    olds, news = iter(old), iter(new)
    before, after = next(olds, _END), next(news, _END)
    while before is not _END or after is not _END:
        if after is _END or (before is not _END and before.id < after.id):
            yield FileOperation("delete", before.id, before.path)
            before = next(olds, _END)
        elif before is _END or after.id < before.id:
            yield _carrying("create", after)
            after = next(news, _END)
        else:
            yield from _changes(before, after)
            before, after = next(olds, _END), next(news, _END)


def _carrying(op: str, record: FileRecord, **extra: object) -> FileOperation:
    """An operation carrying the record's new state, for the baseline to take on success."""
    return FileOperation(op, record.id, record.path, permissions=record.permissions,
                         size=record.size, etag=record.etag, last_modified=record.last_modified,
                         content_version=record.content_version, **extra)  # type: ignore[arg-type]


def _changes(old: FileRecord, new: FileRecord) -> Iterator[FileOperation]:
    if old.path != new.path:
        yield FileOperation(move_kind(old.path, new.path), old.id, old.path, new.path,
                            permissions=new.permissions, size=new.size, etag=new.etag,
                            last_modified=new.last_modified, content_version=new.content_version,
                            object_path=new.path)
    unknown = new.permissions == ""
    if old.content_version != new.content_version:
        # Known permissions that changed get their own operation below; unknown ones are read
        # from the object while its content is delivered.
        yield _carrying("update", new, old_permissions=old.permissions)
    elif unknown:
        yield _carrying("update_permissions", new, old_permissions=old.permissions)
    if not unknown and old.permissions != new.permissions:
        yield _carrying("update_permissions", new, old_permissions=old.permissions)
