"""In-memory state of the mock file manager: index, call log, reports, idempotency cache, locks."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from mock_api.storage import FileRecord

#: Upper bound on remembered idempotency keys; the oldest are forgotten first.
IDEMPOTENCY_CACHE_SIZE = 200_000

#: A processed answer: HTTP status and JSON body.
Outcome = tuple[int, dict[str, Any]]


@dataclass
class _LockEntry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class KeyedLocks:
    """One asyncio.Lock per key, created on demand and dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._entries: dict[str, _LockEntry] = {}

    def __len__(self) -> int:
        """Number of keys currently held or awaited."""
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        """Hold the locks of all ``keys``; taken in sorted order so two multi-key holders cannot deadlock."""
        entries: list[tuple[str, _LockEntry]] = []
        held: list[_LockEntry] = []
        try:
            for key in sorted(set(keys)):
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = _LockEntry()
                entry.users += 1
                entries.append((key, entry))
            for _, entry in entries:
                await entry.lock.acquire()
                held.append(entry)
            yield
        finally:
            for entry in reversed(held):
                entry.lock.release()
            for key, entry in entries:
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[key]


class IdempotencyCache:
    """Bounded map (endpoint, key) -> processed answer, evicting the oldest entry when full."""

    def __init__(self, max_entries: int = IDEMPOTENCY_CACHE_SIZE) -> None:
        self.max_entries = max_entries
        self._answers: OrderedDict[tuple[str, str], Outcome] = OrderedDict()

    def __len__(self) -> int:
        """Number of cached answers."""
        return len(self._answers)

    def get(self, endpoint: str, key: str) -> Outcome | None:
        """Return the cached answer for ``key`` on ``endpoint``, if any."""
        return self._answers.get((endpoint, key))

    def put(self, endpoint: str, key: str, outcome: Outcome) -> None:
        """Remember ``outcome`` for ``key`` on ``endpoint``."""
        self._answers[(endpoint, key)] = outcome
        while len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer."""
        self._answers.clear()


@dataclass
class Stats:
    """Counters exposed by ``GET /stats``."""

    replayed: int = 0
    faulted: int = 0
    applied: int = 0

    def to_json(self) -> dict[str, int]:
        """Return the counters as a JSON-ready dict."""
        return {"replayed": self.replayed, "faulted": self.faulted, "applied": self.applied}


class MockState:
    """Everything the mock remembers between requests.

    All fields are touched only from the event-loop thread, and every read-check-write sequence
    on the index runs under the per-path locks in ``path_locks``; that is the index's lock.
    """

    def __init__(self, index: dict[str, FileRecord] | None = None) -> None:
        self.index: dict[str, FileRecord] = dict(index or {})
        self.operations: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.stats = Stats()
        #: Contract calls arrived and not answered yet; not reset, as those calls still finish.
        self.in_flight = 0
        self.idempotency = IdempotencyCache()
        self.path_locks = KeyedLocks()
        self.key_locks = KeyedLocks()

    def record_operation(
        self, op: str, path: str | None, to: str | None, idempotency_key: str | None, status: int,
        *, replay: bool = False,
    ) -> None:
        """Append a mutating call to the operation log: one applied, or one answered from the
        idempotency cache (``replay``), which changed nothing but was still sent; a test that
        counts what a client sent must see both."""
        self.operations.append({"op": op, "path": path, "to": to, "idempotency_key": idempotency_key,
                                "status": status, "replay": replay})
        if replay:
            self.stats.replayed += 1
        else:
            self.stats.applied += 1

    def record_call(self, op: str, path: str | None, status: int, arrived_at: float, answered_at: float) -> None:
        """Append a contract call to the call log, whatever its answer (Unix times)."""
        self.calls.append({"op": op, "path": path, "status": status, "arrived_at": arrived_at,
                           "answered_at": answered_at})

    def files(self) -> list[dict[str, Any]]:
        """Return the stored files sorted by path."""
        return [
            {"path": path, "size": rec.size, "sha256": rec.sha256, "permissions": rec.permissions}
            for path, rec in sorted(self.index.items())
        ]

    def reset(self) -> None:
        """Forget files, operations, reports, idempotency answers and counters."""
        self.index.clear()
        self.operations.clear()
        self.calls.clear()
        self.reports.clear()
        self.idempotency.clear()
        self.stats = Stats()
