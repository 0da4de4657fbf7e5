"""The retry schedule, as pure functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

BACKOFF_FACTOR_S = 0.2
MAX_BACKOFF_S = 20.0


def compute_backoff(
    attempt: int,
    *,
    factor: float = BACKOFF_FACTOR_S,
    max_backoff: float = MAX_BACKOFF_S,
    jitter: bool = True,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, capped, full jitter."""
    ceiling = min(max_backoff, factor * (2 ** max(attempt - 1, 0)))
    if not jitter:
        return ceiling
    return (rng or random).uniform(0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
