"""A set of row ids held as one bit each.

A run, or a worker that lives for days, remembers the row ids it applied or tried. As a Python
``set`` each id costs 60 to 90 bytes (its slot in the table and its ``int``), which made an
initial sync of a million objects hold three such sets, some 150 MB, by its end. The ids a
process sees are close together (SQLite rowids, PostgreSQL sequences), so a bitmap from the
smallest one holds them in an eighth of a byte each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

#: The bitmap's most bytes (64 Mi ids); an id further from the rest goes to a plain set.
MAX_BITMAP_BYTES = 8 * 1024 * 1024


class IdSet:
    """Non-negative integers, as bits from the smallest seen (rounded down to a multiple of 8);
    what would stretch the bitmap past ``MAX_BITMAP_BYTES`` is kept in a plain set beside it."""

    __slots__ = ("_base", "_bits", "_count", "_spill")

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._base = 0
        self._bits = bytearray()
        self._count = 0
        self._spill: set[int] = set()
        self.update(ids)

    def add(self, n: int) -> None:
        """Add ``n`` (a ValueError when it is negative)."""
        if n < 0:
            raise ValueError(f"an IdSet holds non-negative integers, not {n}")
        if self._spill and n in self._spill:
            return
        if not self._bits:
            self._base = n & ~7
        elif n < self._base:
            grow = (self._base - (n & ~7)) >> 3
            if grow + len(self._bits) > MAX_BITMAP_BYTES:
                self._add_spilled(n)
                return
            self._bits[0:0] = bytes(grow)
            self._base = n & ~7
        offset = n - self._base
        byte = offset >> 3
        if byte >= len(self._bits):
            if byte >= MAX_BITMAP_BYTES:
                self._add_spilled(n)
                return
            self._bits.extend(bytes(byte + 1 - len(self._bits)))
        mask = 1 << (offset & 7)
        if not self._bits[byte] & mask:
            self._bits[byte] |= mask
            self._count += 1

    def _add_spilled(self, n: int) -> None:
        if n not in self._spill:
            self._spill.add(n)
            self._count += 1

    def update(self, ids: Iterable[int]) -> None:
        for n in ids:
            self.add(n)

    def discard(self, n: int) -> None:
        offset = n - self._base
        if 0 <= offset < len(self._bits) << 3:
            mask = 1 << (offset & 7)
            if self._bits[offset >> 3] & mask:
                self._bits[offset >> 3] &= ~mask & 0xFF
                self._count -= 1
                return
        if n in self._spill:  # spilled before the bitmap grew to reach it
            self._spill.discard(n)
            self._count -= 1

    def copy(self) -> IdSet:
        twin = IdSet()
        twin._base, twin._bits, twin._count, twin._spill = (
            self._base, bytearray(self._bits), self._count, set(self._spill))
        return twin

    def __sub__(self, other: Iterable[int]) -> IdSet:
        rest = self.copy()
        for n in other:
            rest.discard(n)
        return rest

    def __contains__(self, n: object) -> bool:
        if not isinstance(n, int):
            return False
        offset = n - self._base
        if 0 <= offset < len(self._bits) << 3 and self._bits[offset >> 3] & (1 << (offset & 7)):
            return True
        return bool(self._spill) and n in self._spill

    def __iter__(self) -> Iterator[int]:
        """The ids in the bitmap in ascending order, then the spilled ones."""
        base = self._base
        for index, byte in enumerate(self._bits):
            if byte:
                start = base + (index << 3)
                for bit in range(8):
                    if byte >> bit & 1:
                        yield start + bit
        yield from sorted(self._spill)

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"IdSet({len(self)} ids)"
