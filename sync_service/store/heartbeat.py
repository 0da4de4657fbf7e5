"""The heartbeat of a process's claims (SPEC §7): a claim lives while its holder lives.

Operations and listing ranges are claimed with a lease on the database server's clock. While
the process runs, a thread renews the leases of everything claimed in its names every third of
the lease, so a lease need not outlast the slowest batch: it only has to outlast a missed beat
or two. A process killed with -9 stops beating, and what it held goes to the others within one
lease. A beat that cannot reach the database is logged and tried again at the next one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from types import TracebackType

from sync_service.errors import DatabaseError
from sync_service.store.database_manager import DatabaseManager

logger = logging.getLogger(__name__)

#: Beats per lease: two may be missed before the claims go.
BEATS_PER_LEASE = 3


class Heartbeat:
    """Renews the leases held in ``holders``' names while it runs (a context manager)."""

    def __init__(self, db: DatabaseManager, holders: Iterable[str], lease_s: float, *,
                 interval_s: float | None = None) -> None:
        self.db = db
        self.holders = tuple(holders)
        self.lease_s = lease_s
        self.interval_s = interval_s if interval_s is not None else lease_s / BEATS_PER_LEASE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._failing = False

    def __enter__(self) -> Heartbeat:
        if self.interval_s > 0:
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def beat(self) -> None:
        """Renew every lease held in the holders' names once."""
        for holder in self.holders:
            self.db.operations.renew(holder, self.lease_s)
            self.db.ranges.renew(holder, self.lease_s)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except DatabaseError as exc:
                if not self._failing:
                    logger.warning("cannot renew the leases of %s: %s", ", ".join(self.holders), exc)
                self._failing = True
                continue
            if self._failing:
                logger.info("the leases of %s are renewed again", ", ".join(self.holders))
                self._failing = False
