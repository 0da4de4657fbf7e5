"""The initial listing in key ranges (SPEC §9, PostgreSQL): what each range holds, how far it
has been listed, who lists it now.

A listing starts as one range: the keys directly below the bucket prefix, listed with ``/`` as
the delimiter (a *folder* range). The folders such a listing finds become ranges of their own:
a folder alone becomes a folder range one level deeper, several neighbouring folders together
a *subtree* range (``folders``: each listed whole, one after the other). A range that turns
out long is split again by its lister. A subtree range first hands on the folders it has not
begun. Otherwise the rest is cut at entries the bucket holds, found by probing (``until``: the
range then ends at the first, and new ranges of the same kind take the rest, each after one
entry and up to the next; a subtree range's new ranges hold the folder it was listing). So keys
without folders, and one huge folder among small neighbours, are shared out too. Ranges hold
disjoint keys, so listers never plan one object twice.

Every page a lister plans is stored with the range's new position (``after``: the last key
listed) in one transaction, and the new ranges it found; a lister claims a range like a worker
claims operations (``claimed_by``, ``lease_until`` on the server's clock) and extends the lease
with each page. A lister killed mid-range leaves its claim until the lease runs out; whoever
claims it next continues after ``after``. A lister whose lease ran out meanwhile finds the range
taken (``LostRange``), and its page is not stored: the new holder lists it again.

The range that finishes last marks the initial sync completed, in the same transaction.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from sync_service.store.database import Database
from sync_service.store.operations import RUN_HOLDER_PREFIX
from sync_service.store.runs import RunStore

#: Ranges made of the folders found on one listing page at most, and made by one split.
RANGES_PER_PAGE = 8
#: The setting that says an initial sync listed the whole bucket (the run id that did).
INITIAL_SYNC_COMPLETED = "initial_sync_completed"


class LostRange(Exception):
    """The range's lease ran out and another lister holds it now."""


@dataclass(frozen=True)
class NewRange:
    """A range to store: a folder range (``folders`` None) of the entries directly below
    ``scope`` after ``after`` and up to ``until`` (None: to the end), or a subtree range."""

    scope: str
    folders: tuple[str, ...] | None = None
    depth: int = 0
    after: str = ""
    until: str | None = None


@dataclass(frozen=True)
class ListingRange:
    """One range of the listing."""

    id: int
    run_id: str
    scope: str  #: the key prefix listed (a folder range lists its keys with '/' as delimiter)
    folders: tuple[str, ...] | None  #: a subtree range: these folders, each listed whole
    depth: int
    after: str  #: the last key (or folder) listed; '' before the first page
    until: str | None = None  #: the range's last entry (None: to the end of its scope or folders)

    @property
    def delimited(self) -> bool:
        """True for a folder range (the keys directly below ``scope``)."""
        return self.folders is None

    def prefix_of(self, after: str) -> str:
        """The key prefix listed at the position ``after``: a folder range's scope, or the
        folder of a subtree range that ``after`` lies in."""
        if self.folders is None:
            return self.scope
        return next((f for f in self.folders if after.startswith(f)), self.scope)

    def describe(self) -> str:
        """For logs: the folder, or the first and last folder of a subtree; and where it ends."""
        if self.folders is None:
            named = f"folder {self.scope!r}"
        elif len(self.folders) == 1:
            named = f"subtree {self.folders[0]!r}"
        else:
            named = f"subtrees {self.folders[0]!r} .. {self.folders[-1]!r} ({len(self.folders)})"
        return named + (f" up to {self.until!r}" if self.until is not None else "")


def split_folders(parent: ListingRange, folders: list[str]) -> list[NewRange]:
    """The ranges the ``folders`` found on one page of the folder range ``parent`` become: at
    most ``RANGES_PER_PAGE``, neighbours grouped in listing order; a folder alone is a folder
    range one level deeper, a group a subtree range."""
    if not folders:
        return []
    groups = min(RANGES_PER_PAGE, len(folders))
    size, extra = divmod(len(folders), groups)
    ranges: list[NewRange] = []
    start = 0
    for n in range(groups):
        group = folders[start:start + size + (1 if n < extra else 0)]
        start += len(group)
        if len(group) == 1:
            ranges.append(NewRange(group[0], None, parent.depth + 1))
        else:
            ranges.append(NewRange(parent.scope, tuple(group), parent.depth + 1))
    return ranges


#: The characters probed at a position of the keys when a range is split: printable ASCII names,
#: then points spread over the scripts past it (Latin letters with accents, Cyrillic, Arabic,
#: Thai, kana, the CJK ideographs, Hangul, emoji), in code-point order, which is the UTF-8 byte
#: order S3 lists in. A key may hold other characters, which fall in the range of the probe
#: before them.
PROBE_ALPHABET = "".join(sorted(
    "!-.0123456789=ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
    "\u00c0\u0400\u0600\u0e00\u3040\u30a0\u4e00\u5800\u6200\u6c00\u7600\u8000\u8a00\u9400"
    "\uac00\uc000\ud400\U0001f300"))


def probe_points(listed: ListingRange, after: str, level: int = 0) -> list[str]:
    """Where to look for boundaries in the rest of the range ``listed`` (of the folder a
    subtree range is in), listed up to ``after``: the probed characters at the first position
    where ``after`` and the range's end differ, between the two; at ``level`` n > 0, the
    characters after ``after``'s own n positions deeper (for keys that share a longer
    beginning). Empty past ``after``'s end."""
    until = listed.until
    position = len(listed.prefix_of(after))
    if until is not None:
        while position < min(len(after), len(until)) and after[position] == until[position]:
            position += 1
    if level:
        position += level
        if position > len(after):
            return []
        until = None  # everything that begins as after[:position] comes before the range's end
    low = after[position] if position < len(after) else ""
    high = until[position] if until is not None and position < len(until) else None
    return [after[:position] + c for c in PROBE_ALPHABET if c > low and (high is None or c <= high)]


def split_points(listed: ListingRange, after: str, found: Iterable[str]) -> list[str]:
    """The boundaries of a split, from the entries ``found`` by probing: those after ``after``
    and before the range's end, at most ``RANGES_PER_PAGE`` - 1, spread evenly."""
    until = listed.until
    inside = sorted({e for e in found if e > after and (until is None or e < until)})
    wanted = RANGES_PER_PAGE - 1
    if len(inside) <= wanted:
        return inside
    return [inside[(n * len(inside)) // RANGES_PER_PAGE] for n in range(1, RANGES_PER_PAGE)]


def split_ranges(listed: ListingRange, bounds: list[str]) -> list[NewRange]:
    """The ranges that take the rest of ``listed`` once it ends at ``bounds[0]``: folder
    ranges, or subtree ranges of the one folder the bounds lie in."""
    ends: list[str | None] = [*bounds[1:], listed.until]
    folders = None if listed.folders is None else (listed.prefix_of(bounds[0]),)
    return [NewRange(listed.scope, folders, listed.depth, after=start, until=end)
            for start, end in zip(bounds, ends, strict=True)]


class ListingRangeStore:
    """Reads and changes the ``listing_ranges`` table (PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def listing_of(bucket: str, prefix: str) -> str:
        """The identity of the listing of ``prefix`` in ``bucket``."""
        return json.dumps([bucket, prefix])

    def start(self, bucket: str, prefix: str, run_id: str) -> int:
        """Begin the listing of ``prefix`` in ``bucket`` for ``run_id``, or continue it: an
        unfinished listing of the same bucket and prefix is taken over by this run (its ranges'
        operations are planned for it, and what they skip is counted afresh: the run that
        listed their first pages reported those); anything else starts over with one folder
        range. Returns the number of ranges left to list."""
        listing = self.listing_of(bucket, prefix)
        with self.db.transaction():
            left = self.db.query("SELECT count(*) FROM listing_ranges WHERE listing = ? AND done = 0",
                                 (listing,))[0][0]
            if left:
                self.db.execute("DELETE FROM listing_ranges WHERE listing != ?", (listing,))
                self.db.execute("UPDATE listing_ranges SET run_id = ?, skipped = NULL WHERE done = 0",
                                (run_id,))
                return int(left)
            self.db.execute("DELETE FROM listing_ranges")
            self._insert(listing, run_id, [NewRange(prefix)])
        return 1

    def _insert(self, listing: str, run_id: str, ranges: Iterable[NewRange]) -> None:
        added = list(ranges)
        if added:
            self.db.work_added()
        for new in added:
            self.db.execute(
                "INSERT INTO listing_ranges (listing, run_id, scope, folders, depth, after, until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (listing, run_id, new.scope, None if new.folders is None else json.dumps(new.folders),
                 new.depth, new.after, new.until))

    def claim(self, lister: str, lease_s: float) -> ListingRange | None:
        """Claim the oldest range no live lease holds, for ``lease_s`` seconds; None when there
        is none now (all listed, or all held)."""
        rows = self.db.query(
            f"UPDATE listing_ranges SET claimed_by = ?, lease_until = {self.db.server_now} + ? WHERE id = ("
            "SELECT id FROM listing_ranges WHERE done = 0 AND "
            f"(lease_until IS NULL OR lease_until < {self.db.server_now}) ORDER BY id LIMIT 1 "
            f"{self.db.skip_locked}) RETURNING id, run_id, scope, folders, depth, after, until",
            (lister, lease_s))
        if not rows:
            return None
        row_id, run_id, scope, folders, depth, after, until = rows[0]
        return ListingRange(int(row_id), run_id, scope,
                            None if folders is None else tuple(json.loads(folders)), int(depth), after,
                            until)

    def advance(self, listed: ListingRange, lister: str, lease_s: float, after: str, *,
                found: Iterable[NewRange] = (), skipped: Mapping[str, int] | None = None,
                done: bool = False) -> None:
        """Store that ``lister`` listed ``listed`` up to ``after`` (and the ranges ``found`` on
        the page, and what it ``skipped``, by reason), extending its lease; with ``done``, the
        range is finished, and if it was the last, the initial sync is marked completed. Joins
        the caller's transaction, which holds the page's plan; raises ``LostRange`` if another
        lister holds the range now."""
        with self.db.transaction():
            changed = self.db.execute(
                f"UPDATE listing_ranges SET after = ?, done = ?, lease_until = {self.db.server_now} + ? "
                "WHERE id = ? AND claimed_by = ? AND done = 0",
                (after, 1 if done else 0, lease_s, listed.id, lister)).rowcount
            if changed != 1:
                raise LostRange(f"range {listed.id} is listed by another lister now")
            listing, before = self.db.query("SELECT listing, skipped FROM listing_ranges WHERE id = ?",
                                            (listed.id,))[0]
            if skipped:
                total = Counter(json.loads(before or "{}")) + Counter(skipped)
                self.db.execute("UPDATE listing_ranges SET skipped = ? WHERE id = ?",
                                (json.dumps(dict(sorted(total.items()))), listed.id))
            self._insert(listing, listed.run_id, found)
            if done:
                # Finishers of one listing queue on a lock of its first range, so the count
                # sees every other finished range: the last finisher knows it is the last.
                self.db.query(f"SELECT id FROM listing_ranges WHERE listing = ? ORDER BY id LIMIT 1"
                              f"{self.db.for_update}", (listing,))
                if not self.db.query("SELECT 1 FROM listing_ranges WHERE done = 0 LIMIT 1"):
                    RunStore(self.db).set_setting(INITIAL_SYNC_COMPLETED, listed.run_id)

    def split(self, listed: ListingRange, lister: str, bounds: list[str]) -> ListingRange:
        """End the range ``listed`` at ``bounds[0]`` and store the ranges that take the
        rest (``split_ranges``); returns the range as it is now. Raises ``LostRange`` if
        another lister holds it now."""
        narrowed = replace(listed, until=bounds[0])
        self._narrow(narrowed, lister, split_ranges(listed, bounds))
        return narrowed

    def hand_off(self, listed: ListingRange, lister: str, keep: int) -> ListingRange:
        """Keep the first ``keep`` folders of the subtree range ``listed`` and store the rest
        as ranges of their own (``split_folders``); returns the range as it is now. Raises
        ``LostRange`` if another lister holds it now."""
        assert listed.folders is not None
        narrowed = replace(listed, folders=listed.folders[:keep])
        self._narrow(narrowed, lister, split_folders(replace(listed, depth=listed.depth - 1),
                                                     list(listed.folders[keep:])))
        return narrowed

    def _narrow(self, narrowed: ListingRange, lister: str, taking_the_rest: list[NewRange]) -> None:
        with self.db.transaction():
            folders = None if narrowed.folders is None else json.dumps(narrowed.folders)
            changed = self.db.execute(
                "UPDATE listing_ranges SET until = ?, folders = ? "
                "WHERE id = ? AND claimed_by = ? AND done = 0",
                (narrowed.until, folders, narrowed.id, lister)).rowcount
            if changed != 1:
                raise LostRange(f"range {narrowed.id} is listed by another lister now")
            listing = self.db.query("SELECT listing FROM listing_ranges WHERE id = ?", (narrowed.id,))[0][0]
            self._insert(listing, narrowed.run_id, taking_the_rest)

    def release(self, lister: str) -> int:
        """Give back the ranges ``lister`` holds (it is stopping)."""
        return self._freed(self.db.execute("UPDATE listing_ranges SET claimed_by = NULL, lease_until = NULL "
                                           "WHERE claimed_by = ? AND done = 0", (lister,)).rowcount)

    def renew(self, lister: str, lease_s: float) -> int:
        """Extend the leases of the ranges ``lister`` holds (its heartbeat)."""
        return self.db.execute(f"UPDATE listing_ranges SET lease_until = {self.db.server_now} + ? "
                               "WHERE claimed_by = ? AND done = 0 AND lease_until IS NOT NULL",
                               (lease_s, lister)).rowcount

    def release_runs(self) -> int:
        """Give back the ranges runs hold (``RUN_HOLDER_PREFIX``), workers' left alone: only the
        holder of the run lock calls this, so the runs that hold them have ended."""
        return self._freed(self.db.execute("UPDATE listing_ranges SET claimed_by = NULL, lease_until = NULL "
                                           "WHERE claimed_by LIKE ? AND done = 0",
                                           (f"{RUN_HOLDER_PREFIX}%",)).rowcount)

    def _freed(self, count: int) -> int:
        """Wake the listers when ``count`` ranges became free to claim."""
        if count:
            self.db.work_added()
        return count

    def free(self) -> int:
        """Ranges not listed to the end that no lister holds now."""
        return int(self.db.query(
            "SELECT count(*) FROM listing_ranges WHERE done = 0 AND "
            f"(lease_until IS NULL OR lease_until < {self.db.server_now})")[0][0])

    def left(self) -> int:
        """Ranges not yet listed to the end."""
        return int(self.db.query("SELECT count(*) FROM listing_ranges WHERE done = 0")[0][0])

    def skipped(self, run_id: str) -> Counter[str]:
        """What the listers of ``run_id``'s ranges left alone, by reason."""
        total: Counter[str] = Counter()
        for (counts,) in self.db.query("SELECT skipped FROM listing_ranges WHERE run_id = ? "
                                       "AND skipped IS NOT NULL", (run_id,)):
            total.update(json.loads(counts))
        return total

    def completed(self) -> bool:
        """True once an initial sync listed the whole bucket (its last range finished)."""
        return RunStore(self.db).get_setting(INITIAL_SYNC_COMPLETED) is not None

    def counts(self) -> dict[str, int]:
        """Ranges listed and left (for status)."""
        rows = dict(self.db.query("SELECT done, count(*) FROM listing_ranges GROUP BY done"))
        return {"listed": int(rows.get(1, 0)), "left": int(rows.get(0, 0))}
