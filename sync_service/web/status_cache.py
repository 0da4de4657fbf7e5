"""The status behind the page, ``/api/status``, ``/readyz`` and ``/health``: the database part
read on every request, the live part (event source, S3, API) asked at most once every
``live_ttl_s`` seconds, and the health verdict on both.

A page that refreshes every few seconds, open in a few browsers, would otherwise ask S3, the
file manager and the event source several times a second for an answer that rarely changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sync_service.errors import SyncError
from sync_service.runs.health import FAILING, CycleState, Health, judge
from sync_service.runs.status import StatusReader
from sync_service.store.database import Database
from sync_service.utils.redaction import redact, redact_value

LIVE_TTL_S = 15.0


class StatusCache:
    """A ``StatusReader``'s status with its live checks reused for ``live_ttl_s``; ``database``
    is the one the reader reads, asked to fail fast while it is away."""

    def __init__(self, reader: StatusReader, database: Database, live_ttl_s: float = LIVE_TTL_S,
                 monotonic: Callable[[], float] | None = None,
                 cycles: Callable[[], CycleState] | None = None) -> None:
        self.reader = reader
        self.database = database
        self.cycles = cycles or CycleState
        self.live_ttl_s = live_ttl_s
        self.monotonic = monotonic or time.monotonic
        self._lock = threading.Lock()
        self._live: dict[str, Any] | None = None
        self._checked: float | None = None

    def status(self) -> dict[str, Any]:
        """The status as ``status --json`` gives it, with live checks at most ``live_ttl_s`` old
        and the health verdict on the daemon's own cycles."""
        return self._judged()[0]

    def health(self) -> Health:
        """The verdict of ``/readyz`` and ``/health``; failing when the database cannot be read."""
        try:
            return self._judged()[1]
        except SyncError as exc:
            return Health(FAILING, redact(f"database unreachable: {exc}"))

    def _judged(self) -> tuple[dict[str, Any], Health]:
        with self.database.failing_fast():  # a database away is an answer, not a wait
            status = self.reader.read(live=False)
            status.update(self._live_part())
        health = judge(status, self.cycles(), time.time())
        status["health"] = redact_value(health.to_dict())
        return status, health

    def live_age_s(self) -> float | None:
        """How old the live checks are, in seconds (None before the first)."""
        with self._lock:
            return None if self._checked is None else self.monotonic() - self._checked

    def _live_part(self) -> dict[str, Any]:
        # One caller at a time asks; the others wait for its answer instead of asking again.
        with self._lock:
            now = self.monotonic()
            if self._live is None or self._checked is None or now - self._checked >= self.live_ttl_s:
                self._live = self.reader.live()
                self._checked = self.monotonic()
            return self._live
