"""A tiny clock, injected wherever the service waits or reads the time, so tests never sleep."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall time, monotonic time and sleeping."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        if seconds > 0:
            time.sleep(seconds)
