"""Several listers of the initial listing's key ranges in one process (``LISTERS``).

One ``RangeLister`` lists one range at a time, a page after the other: on a bucket of a hundred
folders the listing, not the file manager, sets the pace. The pool runs ``count`` of them in
threads beside the executor, as rclone runs its checkers, so the ranges the first page's
folders become are listed at once. Ranges hold disjoint keys and each is claimed by one lister
(``ListingRangeStore.claim``), so no object is planned twice; each lister has a name of its
own (``<holder>/<n>``), so one lister giving its ranges back never frees another's, and the
pool's heartbeat renews the leases of all of them.
"""

from __future__ import annotations

import threading

from sync_service.clients.storage.base import ObjectStore
from sync_service.models.data_models import RunReport
from sync_service.planning.filters import EVERYTHING, ObjectFilter
from sync_service.sources.range_lister import RangeLister
from sync_service.store.database_manager import DatabaseManager
from sync_service.store.heartbeat import Heartbeat
from sync_service.store.outage import OutageWatch
from sync_service.utils.clock import Clock

#: Listers a process runs by default: as many ranges as one listing page makes at most
#: (``RANGES_PER_PAGE``), so the first page's folders are all listed at once.
DEFAULT_LISTERS = 8


class ListerPool:
    """``count`` range listers in threads, started, stopped and joined together."""

    def __init__(self, s3: ObjectStore, db: DatabaseManager, *, name: str, count: int, lease_s: float,
                 clock: Clock, report: RunReport | None = None, until_listed: bool = False,
                 outage: OutageWatch | None = None, rules: ObjectFilter = EVERYTHING) -> None:
        names = [name] if count <= 1 else [f"{name}/{n}" for n in range(count)]
        counting = threading.Lock()  # the listers count their skips into one report
        self.listers = [RangeLister(s3, db, name=lister, lease_s=lease_s, clock=clock, report=report,
                                    until_listed=until_listed, outage=outage, rules=rules,
                                    report_lock=counting)
                        for lister in names]
        self._heartbeat = Heartbeat(db, names, lease_s)

    def start(self) -> ListerPool:
        """Start every lister, and the heartbeat of their ranges."""
        self._heartbeat.__enter__()
        for lister in self.listers:
            lister.start()
        return self

    def stop(self) -> None:
        """Ask every lister to stop after the page it is on."""
        for lister in self.listers:
            lister.stop()

    @property
    def running(self) -> bool:
        """True while any lister lists (or waits for a range)."""
        return any(lister.running for lister in self.listers)

    @property
    def error(self) -> BaseException | None:
        """What stopped the first lister that failed, if any did."""
        return next((lister.error for lister in self.listers if lister.error is not None), None)

    def join(self) -> None:
        """Wait for every lister; raise what stopped the first that failed, if any did."""
        failures: list[BaseException] = []
        try:
            for lister in self.listers:
                try:
                    lister.join()
                except BaseException as exc:  # the others are still waited for
                    failures.append(exc)
        finally:
            self._heartbeat.__exit__(None, None, None)
        if failures:
            raise failures[0]
