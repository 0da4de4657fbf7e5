"""The lister of the initial listing's key ranges (SPEC §9).

Every process that applies operations from the shared database (the initial sync itself and
each ``worker``) runs ``LISTERS`` of them (``ListerPool``), each in a thread beside its
executor: a lister claims a range (``ListingRangeStore``), lists it page by page and stores
each page's plan with the range's new position, unclaimed, for whichever process claims it
first. A folder range's pages also yield
the folders below it, which become new ranges that other listers take. The lister waits while
more than ``BACKLOG`` operations are pending, so listing never runs far ahead of applying.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping

from sync_service.clients.storage.base import ObjectStore
from sync_service.errors import DatabaseError, DatabaseUnavailable
from sync_service.models.data_models import ObjectSummary, RunReport
from sync_service.planning.filters import EVERYTHING, ObjectFilter
from sync_service.planning.planners import plan_page
from sync_service.store.database_manager import DatabaseManager
from sync_service.store.listing_ranges import (
    ListingRange,
    LostRange,
    probe_points,
    split_folders,
    split_points,
)
from sync_service.store.outage import OutageWatch
from sync_service.store.wakeups import Wakeup
from sync_service.utils.clock import Clock

logger = logging.getLogger(__name__)

#: Pending operations above which a lister waits before its next page.
BACKLOG = 4000
#: Seconds between looks at the table while no range is free, or the backlog is full, when no
#: wake-up comes (a lease that ran out, a lost notification).
IDLE_POLL_S = 1.0
#: Full pages of a range after which its lister shares the rest out if no other range is free to
#: list (and again after as many more): a range this long is worth a few one-key LISTs.
SPLIT_AFTER_PAGES = 4
#: Character positions probed at most, one after the other, before a range is left whole.
PROBE_LEVELS = 8


class RangeLister:
    """Claims ranges of the initial listing and plans them page by page, until stopped; with
    ``until_listed``, until no range is left to list."""

    def __init__(self, s3: ObjectStore, db: DatabaseManager, *, name: str, lease_s: float,
                 clock: Clock, report: RunReport | None = None, until_listed: bool = False,
                 outage: OutageWatch | None = None, rules: ObjectFilter = EVERYTHING,
                 report_lock: threading.Lock | None = None) -> None:
        self.s3 = s3
        self.rules = rules  # what is synced: the rest of a page is counted, not planned
        self.db = db
        self.name = name
        self.lease_s = lease_s
        self.clock = clock
        self.report = report  # counts what this lister skipped (the range stores it too)
        self.report_lock = report_lock or threading.Lock()  # shared by listers of one report
        self.until_listed = until_listed
        self.outage = outage or OutageWatch(db.location, give_up_after_s=0, clock=clock)
        self.error: BaseException | None = None
        self._wakeup: Wakeup
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- in a thread beside the executor ------------------------------------------------------

    def start(self) -> RangeLister:
        """Run in a thread of its own."""
        self._thread = threading.Thread(target=self._run_recording, name=f"lister-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to stop after the page it is on (its claims are given back)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once the process or the caller asked to stop."""
        return self.clock.stopping or self._stop.is_set()

    @property
    def running(self) -> bool:
        """True while the thread lists (or waits for a range)."""
        return self._thread is not None and self._thread.is_alive()

    def join(self) -> None:
        """Wait for the thread; raise what stopped it, if anything did."""
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error

    def _run_recording(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # handed to join(), in the thread that applies
            self.error = exc

    # -- the work ---------------------------------------------------------------------------

    def run(self) -> None:
        """Claim and list ranges until stopped (or, ``until_listed``, until none is left)."""
        self._wakeup = self.db.database.wakeups.subscribe()
        try:
            while not self.stopping:
                try:
                    claimed = self.db.ranges.claim(self.name, self.lease_s)
                    if claimed is None:
                        if self.until_listed and self.db.ranges.left() == 0:
                            return
                        self._idle()  # others hold the rest, or nothing to list
                        continue
                    self._list(claimed)
                except LostRange as exc:
                    logger.warning("%s: %s; its page was not stored", self.name, exc)
                except DatabaseUnavailable as exc:
                    # The range goes on after the last page stored, by whoever claims it next.
                    if self.stopping:
                        break
                    self.outage.wait(exc)
                    self.outage.run(lambda: self.db.ranges.release(self.name))
                    continue
                self.outage.ended()
        finally:
            self._wakeup.close()
            try:
                self.db.ranges.release(self.name)
            except DatabaseError as exc:  # its lease runs out instead
                logger.warning("%s: could not give its ranges back: %s", self.name, exc)
            self.db.database.wakeups.wake_all()  # the claim loop beside it: the listing ended

    def _list(self, listed: ListingRange) -> None:
        logger.info("%s: listing range %d, %s%s", self.name, listed.id, listed.describe(),
                    f", continuing after {listed.after!r}" if listed.after else "")
        after = listed.after
        pages = 0
        while True:
            for page, folders, last, more in self._pages(listed, after):
                after = last
                self._wait_for_backlog()
                if self.stopping:
                    return
                batch = plan_page(self.db, listed.run_id, page,
                                  then=self._storing(listed, after, folders), rules=self.rules)
                if self.report is not None and batch.skipped:
                    with self.report_lock:
                        for reason, count in batch.skipped.items():
                            self.report.skip(reason, count)
                pages += 1
                if more and pages % SPLIT_AFTER_PAGES == 0:
                    split = self._split(listed, after)
                    if split is not None:
                        listed = split
                        break  # list on up to the range's new end, or its last folder now
            else:
                break
        if not self.stopping:
            self.db.ranges.advance(listed, self.name, self.lease_s, after, done=True)

    def _storing(self, listed: ListingRange, after: str,
                 folders: list[str]) -> Callable[[Mapping[str, int]], None]:
        """What a page's transaction stores of the range: its position ``after``, the ranges
        the page's ``folders`` become, and what the page left alone."""
        def store(skipped: Mapping[str, int]) -> None:
            self.db.ranges.advance(listed, self.name, self.lease_s, after,
                                   found=split_folders(listed, folders), skipped=skipped)
        return store

    def _split(self, listed: ListingRange, after: str) -> ListingRange | None:
        """Share out the rest of a long range when no other range is free to list: the folders
        of a subtree range not begun yet become ranges of their own; otherwise the range (or
        the subtree range's folder being listed) is probed for entries between ``after`` and
        its end, and what lies beyond the first of them goes to new ranges."""
        if self.db.ranges.free():
            return None  # the other listers have ranges to take
        if listed.folders is not None:
            begun = sum(1 for f in listed.folders if f < after or after.startswith(f))
            if begun < len(listed.folders):
                logger.info("%s: range %d hands %d folders on from %r", self.name, listed.id,
                            len(listed.folders) - begun, listed.folders[begun])
                return self.db.ranges.hand_off(listed, self.name, begun)
        bounds: list[str] = []
        for level in range(PROBE_LEVELS):
            points = probe_points(listed, after, level)
            if not points and level:
                break
            found = self.s3.first_entries(listed.prefix_of(after), points, delimited=listed.delimited)
            bounds = split_points(listed, after, found)
            if bounds:
                break
        if not bounds:
            return None
        split = self.db.ranges.split(listed, self.name, bounds)
        logger.info("%s: range %d split after %r: %d more ranges from %r", self.name, listed.id,
                    after, len(bounds), bounds[0])
        return split

    def _pages(self, listed: ListingRange,
               after: str) -> Iterator[tuple[list[ObjectSummary], list[str], str, bool]]:
        """The range's pages after ``after``: (objects, folders found, the page's last entry,
        whether the listing goes on after it)."""
        until = listed.until
        if listed.folders is None:
            for page, folders, more in self.s3.iter_scope(listed.scope, start_after=after, delimited=True):
                # The range ends at ``until``, once a page reaches it.
                ended = until is not None and max(page[-1].key if page else "",
                                                  folders[-1] if folders else "") >= until
                # A listing continued after a folder may name that folder again: it is listed.
                page = [s for s in page if s.key > after and (until is None or s.key <= until)]
                folders = [f for f in folders if f > after and (until is None or f <= until)]
                last = max(page[-1].key if page else "", folders[-1] if folders else "")
                if last:
                    after = last
                    yield page, folders, last, more and not ended
                if ended:
                    return
            return
        for folder in listed.folders:
            if folder < after and not after.startswith(folder):
                continue  # listed whole before the range was continued
            start = after if after.startswith(folder) else ""
            for page, _, more in self.s3.iter_scope(folder, start_after=start):
                ended = until is not None and bool(page) and page[-1].key >= until
                page = [s for s in page if until is None or s.key <= until]
                if page:
                    after = page[-1].key
                    yield page, [], after, more and not ended
                if ended:
                    return

    def _wait_for_backlog(self) -> None:
        while not self.stopping and self.db.operations.backlog(BACKLOG + 1) > BACKLOG:
            self._idle()

    def _idle(self) -> None:
        """Wait until work is added or recorded (here or on another machine), or a poll's time."""
        self._wakeup.wait(IDLE_POLL_S, lambda: self.stopping)
