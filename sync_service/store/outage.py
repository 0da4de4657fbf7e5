"""Waiting out the database going away (SPEC §7): a restart, a network cut, SQLite busy past
its timeout.

A process has one ``OutageWatch``. The database waits through it for a connection before it
sends anything (nothing is lost by trying again then); the long-lived loops (a worker's claim
loop, a lister, the executor's writer) run each unit of work through it, so a unit a lost
connection broke off is tried again. While the database answers ``DatabaseUnavailable`` the
watch waits with backoff, and logs the outage once when it begins and once when it ends. A
worker and a daemon wait as long as it lasts; a one-off command gives up after
``DATABASE_OUTAGE_TIMEOUT`` seconds with a ``DatabaseError`` naming the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from sync_service.errors import DatabaseError, DatabaseUnavailable
from sync_service.utils.backoff import compute_backoff
from sync_service.utils.clock import Clock

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Backoff between tries while the database is away: 0.5 s, doubling, at most 5 s.
RETRY_FACTOR_S = 0.5
RETRY_MAX_S = 5.0


class OutageWatch:
    """Tries units of work again while the database is unreachable; one per process."""

    def __init__(self, database: str, *, give_up_after_s: float | None, clock: Clock | None = None) -> None:
        self.database = database
        self.give_up_after_s = give_up_after_s
        self.clock = clock or Clock()
        self._lock = threading.Lock()
        self._since: float | None = None
        self._tries = 0
        self._gave_up: DatabaseError | None = None

    @property
    def unreachable_for(self) -> float | None:
        """Seconds the database has been unreachable, or None while it answers."""
        since = self._since
        return None if since is None else self.clock.monotonic() - since

    def run(self, unit: Callable[[], T]) -> T:
        """``unit()``, tried again while it fails with ``DatabaseUnavailable``; raises
        ``DatabaseError`` once the outage outlasts ``give_up_after_s``, or the unit's error
        when stop is asked for meanwhile. Once it gave up, it gives up at once: the command is
        ending, and every unit would wait for a connection in vain."""
        if self._gave_up is not None:
            raise self._gave_up
        while True:
            try:
                result = unit()
            except DatabaseUnavailable as exc:
                self.wait(exc)
                continue
            self.ended()
            return result

    def wait(self, error: DatabaseUnavailable) -> None:
        """The database did not answer: log it (once an outage), wait a little, or give up;
        while stopping, give up at once (what is not done stays for the next run)."""
        if self.clock.stopping:
            raise error
        with self._lock:
            if self._since is None:
                self._since = self.clock.monotonic()
                logger.warning("the database is unavailable (%s); waiting for it to come back", error)
            self._tries += 1
            tries, since = self._tries, self._since
        waited = self.clock.monotonic() - since
        if self.give_up_after_s is not None and waited >= self.give_up_after_s:
            self._gave_up = DatabaseError(
                f"{self.database} has been unreachable for {waited:.0f}s "
                f"(DATABASE_OUTAGE_TIMEOUT is {self.give_up_after_s:g}): {error}")
            raise self._gave_up from error
        if not self.clock.sleep(compute_backoff(tries, factor=RETRY_FACTOR_S, max_backoff=RETRY_MAX_S)):
            raise error  # stopping: what is not done stays for the next run

    def ended(self) -> None:
        """The database answered: if it had been away, say so once."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            logger.info("the database is back after %.1fs", self.clock.monotonic() - self._since)
            self._since, self._tries = None, 0
