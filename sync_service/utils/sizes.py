"""Sizes as people write them: ``512``, ``64K``, ``10M``, ``1.5G``, ``10MiB`` (binary multiples,
as rclone's ``--bwlimit`` and ``--max-size`` read them)."""

from __future__ import annotations

import re

MULTIPLES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in ``text``; raises ValueError when it is not a size."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match[1]) * MULTIPLES[match[2].upper()])
