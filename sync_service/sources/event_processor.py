"""Replaying events into the database (SPEC §5).

Messages are read in batches from the configured source. For each batch, the S3 metadata that
``create`` events need is fetched first (concurrently, outside any transaction); then the
events apply in arrival order inside one transaction that also stores the source position,
the applied event ids, and the dead letters. Only after that commit is the batch acknowledged
to the source. A malformed message is dead-lettered and never stops the others.

Every record an event changes is marked dirty in the same transaction: the dirty records are
what the cycle then plans. An object whose HEAD fails (403, or 5xx after retries) fails only its
own event: its record is kept with its content unknown, so the delivery planned for it fails,
is kept, and is tried again by later runs until the object can be read.

Events see the bucket through the filter rules (``ObjectFilter``): an event whose object ends
outside the synced view (a create of ``x.tmp`` under ``EXCLUDE=*.tmp``, a rename into an
excluded name, an object grown past ``MAX_SIZE``) is counted by reason, and the records at its
paths leave the view at once: the cycle's plan deletes them from the file manager.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sync_service.clients.event_source import EventSource, MessageBatch
from sync_service.clients.storage.base import ObjectMeta, ObjectStore
from sync_service.errors import ObjectError, ObjectGone
from sync_service.models.data_models import FileRecord, ObjectSummary, iso_utc
from sync_service.models.event_parser import EventError, read_message, sequencer_is_newer
from sync_service.models.events import Event, RawMessage
from sync_service.planning.filters import EVERYTHING, ObjectFilter
from sync_service.store.database_manager import DatabaseManager
from sync_service.utils.aio import run_async
from sync_service.utils.clock import Clock
from sync_service.utils.permissions import canonical_json, permissions_from_metadata
from sync_service.utils.redaction import redact_value

logger = logging.getLogger(__name__)

BATCH_SIZE = 2000
POSITION_KEY = "event_position"
HEAD_CONCURRENCY = 32
UNREADABLE = ObjectMeta(key="", size=0, etag="", last_modified="", metadata={})


@dataclass
class ReplayResult:
    """What a replay did."""

    applied: int = 0
    rejected: int = 0
    duplicates: int = 0
    stale: int = 0
    batches: int = 0
    messages: int = 0
    position: str | None = None
    rejections: list[str] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    created: list[int] = field(default_factory=list)
    deleted: list[FileRecord] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    #: The time each touched record's first event carried (its ``occurred_at``/``eventTime``).
    event_times: dict[int, str] = field(default_factory=dict)

    def dropped(self) -> dict[str, int]:
        """Events left alone on purpose, by reason: already applied (``duplicate``), older than
        the last applied for their key (``stale``), and what the messages and the filter rules
        skipped (``foreign_bucket``, ``test_event``, ``folder_marker``, ``excluded``, …)."""
        counts = {"duplicate": self.duplicates, "stale": self.stale, **self.skipped}
        return {reason: n for reason, n in counts.items() if n}


@dataclass
class _Parsed:
    message: RawMessage
    events: list[Event]
    error: str | None = None
    skipped: list[str] = field(default_factory=list)


class EventProcessor:
    """Applies events from a source to the file records."""

    def __init__(self, db: DatabaseManager, s3: ObjectStore, source: EventSource, *,
                 dead_letters_dir: Path, permissions_key: str,
                 default_permissions: dict[str, object], bucket: str = "", prefix: str = "",
                 batch_size: int = BATCH_SIZE, position_key: str | None = POSITION_KEY,
                 clock: Clock | None = None, rules: ObjectFilter = EVERYTHING) -> None:
        self.db = db
        self.rules = rules
        self.s3 = s3
        self.source = source
        self.dead_letters_dir = dead_letters_dir
        self.permissions_key = permissions_key
        self.default_permissions = default_permissions
        self.bucket = bucket
        self.prefix = prefix
        self.batch_size = batch_size
        self.position_key = position_key
        self.clock = clock or Clock()

    def replay(self, *, acknowledge: bool = True, limit: int | None = None) -> ReplayResult:
        """Apply every pending message (``limit``: no batch started past that many);
        ``acknowledge=False`` leaves the source untouched."""
        result = ReplayResult(
            position=self.db.events.position(self.position_key) if self.position_key else None)
        held: list[MessageBatch] = []
        for batch in self.source.batches(result.position, self.batch_size):
            if self.clock.stopping:
                break  # the rest waits in the source for the next run
            rejected = self._apply_batch(batch, result)
            result.position = batch.position
            result.batches += 1
            if acknowledge:
                self.source.acknowledge(batch, rejected)
            else:
                held.append(batch)
            result.messages += len(batch.messages)
            if limit is not None and result.messages >= limit:
                break  # before the next batch is fetched: the rest waits in the source
        # Given back only now: released at once, a message would be fetched again in this loop.
        release = getattr(self.source, "release", None)
        if release is not None:
            for batch in held:
                release(batch)
        return result

    # -- one batch ---------------------------------------------------------------------------

    def _apply_batch(self, batch: MessageBatch, result: ReplayResult) -> frozenset[str]:
        """Apply one batch in one transaction; returns the positions of rejected messages."""
        parsed = [self._parse(message) for message in batch.messages]
        metas, as_recorded = self._fetch_metadata([e for p in parsed for e in p.events])
        rejected: list[tuple[RawMessage, str]] = []
        with self.db.transaction():
            for item in parsed:
                if item.error is not None:
                    rejected.append((item.message, item.error))
                    continue
                for reason in item.skipped:
                    result.skipped[reason] = result.skipped.get(reason, 0) + 1
                for event in item.events:
                    self._apply_event(event, metas, as_recorded, result)
            for message, reason in rejected:
                self.db.events.add_dead_letter(self.source.name, message.position, reason,
                                               message.body)
            if self.position_key:
                self.db.events.set_position(self.position_key, batch.position)
        for message, reason in rejected:
            self._write_dead_letter(message, reason)
            result.rejected += 1
            result.rejections.append(f"{message.position}: {reason}")
            logger.warning("rejected event at %s: %s", message.position, reason)
        return frozenset(message.position for message, _ in rejected)

    def _parse(self, message: RawMessage) -> _Parsed:
        try:
            parsed = read_message(message.body, bucket=self.bucket, prefix=self.prefix)
            return _Parsed(message, parsed.events, skipped=parsed.skipped)
        except EventError as exc:
            return _Parsed(message, [], str(exc))

    def _fetch_metadata(self, events: list[Event]) -> tuple[dict[str, ObjectMeta | None],
                                                             dict[str, ObjectSummary]]:
        """What creates without a notification's content need to know of their objects, and
        the targets of renames whose source has no record (they become creates).

        A create of a recorded path is first looked for in a listing of its folder: an object
        the listing shows as recorded (size, eTag, time) is returned apart, as listed, and
        needs no HEAD; every other path is HEADed, concurrently (its metadata holds the
        permissions)."""
        # Objects the rules leave out by their names are never read.
        renames = [e for e in events if e.type in ("rename", "move") and e.new_path
                   and self.rules.path_reason(e.new_path) is None]
        known = self.db.records.lookup(sorted({e.path for e in renames}))
        creates = sorted({e.path for e in events if e.type == "create" and e.etag is None
                          and self.rules.path_reason(e.path) is None})
        paths = set(creates) | {e.new_path for e in renames if e.path not in known and e.new_path}
        metas: dict[str, ObjectMeta | None] = {}
        as_recorded: dict[str, ObjectSummary] = {}
        recorded = self.db.records.lookup(creates)
        if recorded:
            listed, covered = self.s3.listed(recorded)
            for path in covered:
                summary = listed.get(path)
                if summary is None:
                    metas[path] = None  # not in the bucket
                elif _as_recorded(recorded[path], summary):
                    as_recorded[path] = summary
                else:
                    continue
                paths.discard(path)
        if paths:
            metas.update(run_async(self._heads(sorted(paths))))
        return metas, as_recorded

    async def _heads(self, paths: list[str]) -> dict[str, ObjectMeta | None]:
        slots = asyncio.Semaphore(HEAD_CONCURRENCY)
        async with self.s3.connect() as s3:
            async def head(path: str) -> ObjectMeta | None:
                async with slots:
                    try:
                        return await s3.head(self.s3.key_of(path))
                    except ObjectGone:
                        return None
                    except ObjectError as exc:
                        logger.warning("create of %r: %s; its delivery will fail and be retried",
                                       path, exc)
                        return UNREADABLE
            return dict(zip(paths, await asyncio.gather(*(head(p) for p in paths)), strict=True))

    def _write_dead_letter(self, message: RawMessage, reason: str) -> None:
        self.dead_letters_dir.mkdir(parents=True, exist_ok=True)
        safe = message.position.replace("/", "_").replace(":", "-")
        (self.dead_letters_dir / f"{self.source.name}-{safe}.json").write_text(json.dumps(
            redact_value({"source": self.source.name, "position": message.position,
                          "reason": reason, "raw": message.body}),
            ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    # -- one event ---------------------------------------------------------------------------

    def _apply_event(self, event: Event, metas: dict[str, ObjectMeta | None],
                     as_recorded: dict[str, ObjectSummary], result: ReplayResult) -> None:
        events, records = self.db.events, self.db.records
        if events.was_applied(event.event_id):
            result.duplicates += 1
            return
        if event.sequencer is not None:
            last = events.sequencer(event.path)
            if last is not None and not sequencer_is_newer(event.sequencer, last):
                result.stale += 1
                return
            events.set_sequencer(event.path, event.sequencer)
        reason = self._left_out(event, metas, as_recorded)
        if reason is not None:
            self._leave_out(event, reason, result)
            events.mark_applied(event.event_id, iso_utc(datetime.now(UTC)))
            return
        touched: list[int | None] = []
        if event.type == "create":
            current = records.get(event.path)
            existed = current is not None
            listed = as_recorded.get(event.path)
            if event.etag is not None:
                created = self._create_notified(event)
            elif listed is not None and _as_recorded(current, listed):
                # The listing showed the object as recorded (and still is, after this batch's
                # earlier events): only permissions the event itself carries can change.
                created = (records.set_permissions(event.path, canonical_json(event.permissions))
                           if event.permissions is not None else None)
            else:
                if event.path not in metas:  # listed, but an earlier event changed the record
                    metas.update(run_async(self._heads([event.path])))
                created = self._create(event.path, metas.get(event.path), event.permissions)
            touched.append(created)
            if created is not None and not existed:
                result.created.append(created)
        elif event.type == "delete":
            gone = records.get(event.path)
            touched.append(records.delete(event.path))
            if gone is not None:
                result.deleted.append(gone)
        elif event.type in ("rename", "move"):
            assert event.new_path is not None
            replaced = records.get(event.new_path) if event.new_path != event.path else None
            moved = records.move(event.path, event.new_path)
            if moved is None:
                if event.new_path not in metas:  # its source went earlier in this batch
                    metas.update(run_async(self._heads([event.new_path])))
                touched.append(self._create(event.new_path, metas.get(event.new_path),
                                            event.permissions))
            else:
                touched += [moved, replaced.id if replaced else None]
        elif event.type == "change_permission":
            changed = records.set_permissions(event.path, canonical_json(event.permissions))
            if changed is None:
                logger.info("permissions for unknown path %r ignored", event.path)
            touched.append(changed)
        result.touched.update(i for i in touched if i is not None)
        if event.occurred_at:
            for record_id in touched:
                if record_id is not None:
                    result.event_times.setdefault(record_id, event.occurred_at)
        events.mark_applied(event.event_id, iso_utc(datetime.now(UTC)))
        result.applied += 1

    def _left_out(self, event: Event, metas: dict[str, ObjectMeta | None],
                  as_recorded: dict[str, ObjectSummary]) -> str | None:
        """Why the object an event leaves behind is outside the synced view, or None."""
        if event.type == "delete" or not self.rules.active:
            return None
        target = event.new_path if event.type in ("rename", "move") and event.new_path else event.path
        reason = self.rules.path_reason(target)
        if reason is not None:
            return reason
        size = event.size
        if size is None and target in as_recorded:
            size = as_recorded[target].size
        if size is None and event.type != "create":
            record = self.db.records.get(event.path)  # a rename keeps its object's size
            size = record.size if record is not None else None
        if size is None:
            meta = metas.get(target)
            size = meta.size if meta is not None and meta is not UNREADABLE else None
        return None if size is None else self.rules.size_reason(size)

    def _leave_out(self, event: Event, reason: str, result: ReplayResult) -> None:
        """Count an event whose object is outside the view; the records at its paths leave the
        view too, so the cycle's plan deletes them from the file manager."""
        paths = [event.path]
        if event.type in ("rename", "move") and event.new_path and event.new_path != event.path:
            paths.append(event.new_path)
        for path in paths:
            gone = self.db.records.get(path)
            removed = self.db.records.delete(path) if gone is not None else None
            if gone is not None and removed is not None:
                result.touched.add(removed)
                result.deleted.append(gone)
        result.skipped[reason] = result.skipped.get(reason, 0) + 1

    def _create_notified(self, event: Event) -> int | None:
        """A create whose notification says the object's size and eTag: no HEAD. Nothing
        changes when the record has that content already; otherwise the record takes it, with
        permissions from the event, the notification's metadata, or (not known) the GET that
        delivers it."""
        assert event.size is not None and event.etag is not None
        record = self.db.records.get(event.path)
        if record is not None and (record.etag, record.size) == (event.etag, event.size):
            return None
        if event.permissions is not None:
            perms = canonical_json(event.permissions)
        elif event.metadata is not None:
            perms = permissions_from_metadata(event.metadata, key=self.permissions_key,
                                              default=self.default_permissions, path=event.path)
        else:
            perms = ""
        return self.db.records.upsert(event.path, event.size, event.etag,
                                      _iso_or_empty(event.occurred_at), perms)

    def _create(self, path: str, meta: ObjectMeta | None,
                permissions: dict[str, object] | None) -> int | None:
        """A new record, or a new content version when the etag changed; nothing if gone."""
        if meta is None:
            logger.info("create of %r: the object is not in the bucket; nothing to do", path)
            return None
        if permissions is not None:
            perms = canonical_json(permissions)
        elif meta is UNREADABLE:
            perms = ""  # not known until the object can be read
        else:
            perms = permissions_from_metadata(meta.metadata, key=self.permissions_key,
                                              default=self.default_permissions, path=path)
        return self.db.records.upsert(path, meta.size, meta.etag, meta.last_modified, perms)


def _as_recorded(record: FileRecord | None, listed: ObjectSummary) -> bool:
    """Whether a listing shows the object exactly as ``record`` has it."""
    return record is not None and (record.size, record.etag, record.last_modified) == (
        listed.size, listed.etag, listed.last_modified)


def _iso_or_empty(moment: str | None) -> str:
    """An event time as the records spell times (ISO-8601 UTC to the second), or ''."""
    if not moment:
        return ""
    try:
        return iso_utc(datetime.fromisoformat(moment.replace("Z", "+00:00")))
    except ValueError:
        return ""
