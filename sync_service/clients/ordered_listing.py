"""The whole listing below the prefix in key order, its folders listed several at once.

A drift scan compares the listing with the records as two sorted streams, so it needs the
listing in order; one paginated LIST gives that at one page a round trip. Here the prefix is
listed with '/' as the delimiter, and each folder it holds is listed whole (no delimiter) by a
thread of its own, up to ``threads`` folders ahead of the one being read. A folder's keys all
sort between the entries around it in the delimited listing, so handing on the delimited
listing's keys and each folder's pages in their places gives the bucket's order. A folder's
thread keeps at most ``pages_ahead`` pages waiting, so memory stays within ``threads`` ×
``pages_ahead`` pages whatever the bucket holds.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator

from sync_service.clients.storage.base import ObjectStore
from sync_service.models.data_models import ObjectSummary

#: Folders listed at once, ahead of the one being read (rclone's checkers: 8 by default).
DEFAULT_THREADS = 8
#: Pages a folder's thread lists before its pages are read.
PAGES_AHEAD = 4

_END = object()


class _FolderListing:
    """One folder listed whole in a thread once started, its pages handed over through a
    bounded queue."""

    def __init__(self, s3: ObjectStore, folder: str, pages_ahead: int) -> None:
        self.folder = folder
        self.pages: queue.Queue[object] = queue.Queue(maxsize=pages_ahead)
        self._s3 = s3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """List the folder in a thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._list, daemon=True, name="ordered-listing")
            self._thread.start()

    def _list(self) -> None:
        try:
            for page, _, _ in self._s3.iter_scope(self.folder):
                if not self._put(page):
                    return
        except BaseException as exc:  # handed to the reader, in its place
            self._put(exc)
            return
        self._put(_END)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self.pages.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[list[ObjectSummary]]:
        self.start()
        while (item := self.pages.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, list)
            yield item

    def cancel(self) -> None:
        """Stop the thread (the reader gave up)."""
        self._stop.set()


def _in_order(page: list[ObjectSummary], folders: list[str]) -> Iterator[list[ObjectSummary] | str]:
    """A delimited page's keys and folders merged in key order: runs of keys, and folder names."""
    run: list[ObjectSummary] = []
    pending = deque(sorted(folders))
    for summary in page:
        while pending and pending[0] < summary.key:
            if run:
                yield run
                run = []
            yield pending.popleft()
        run.append(summary)
    if run:
        yield run
    yield from pending


def iter_sorted_pages(s3: ObjectStore, *, threads: int = DEFAULT_THREADS,
                      pages_ahead: int = PAGES_AHEAD) -> Iterator[list[ObjectSummary]]:
    """The listing below ``s3.prefix`` page by page, in key order; folders listed ``threads``
    at a time."""
    entries: deque[list[ObjectSummary] | _FolderListing] = deque()
    top = s3.iter_scope(s3.prefix, delimited=True)
    more = True
    current: _FolderListing | None = None
    try:
        while True:
            # Read the delimited listing ahead until ``threads`` folders wait (or it ended), never
            # holding more than a few pages of its keys.
            while (more and sum(isinstance(e, _FolderListing) for e in entries) < threads
                   and len(entries) < threads * pages_ahead):
                listed = next(top, None)
                if listed is None:
                    more = False
                    break
                page, folders, _ = listed
                entries.extend(e if isinstance(e, list) else _FolderListing(s3, e, pages_ahead)
                               for e in _in_order(page, folders))
            waiting = [e for e in entries if isinstance(e, _FolderListing)][:threads]
            for listing in waiting:
                listing.start()
            if not entries:
                return
            entry = entries.popleft()
            if isinstance(entry, list):
                yield entry
                continue
            current = entry
            yield from entry
            current = None
    finally:
        for left in (current, *entries):
            if isinstance(left, _FolderListing):
                left.cancel()
