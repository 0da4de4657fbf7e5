"""A tiny clock, injected wherever the service waits or reads the time, so tests never sleep.

A clock can carry a stop signal: its waits end early once stop is asked for, and ``stopping``
tells loops to finish what is in flight and start nothing new.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Wall time, monotonic time, sleeping, and an optional stop signal."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop_event = stop or threading.Event()

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until stop is asked for; False when stopping."""
        if seconds > 0:
            self.stop_event.wait(seconds)
        return not self.stop_event.is_set()

    @property
    def stopping(self) -> bool:
        """True once stop is asked for."""
        return self.stop_event.is_set()
