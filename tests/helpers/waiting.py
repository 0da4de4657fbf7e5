"""Waiting in tests: poll a condition until a deadline, never sleep a guessed time."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "the condition",
             interval: float = 0.05) -> None:
    """Poll ``condition()`` until it is true; fail naming ``what`` when ``timeout`` seconds pass
    first. The condition is read once more at the deadline, so a slow machine is not blamed
    for the last interval."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            if condition():
                return
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(interval)  # the poll's interval, not a guess of how long the condition takes


def holds_for(condition: Callable[[], Any], duration: float, what: str = "the condition",
              interval: float = 0.05) -> None:
    """Check ``condition()`` again and again for ``duration`` seconds; fail at the first read
    where it does not hold. For what must stay true (a lease not taken over) over a span the
    test itself is about."""
    end = time.monotonic() + duration
    while True:
        assert condition(), f"{what} stopped holding"
        if time.monotonic() >= end:
            return
        time.sleep(interval)  # the interval between two checks of the span under test


def blocked_in_wait(thread: threading.Thread) -> bool:
    """True while ``thread`` is parked in a ``threading`` wait (an Event's, a Condition's)."""
    frame = sys._current_frames().get(thread.ident or -1)
    return frame is not None and frame.f_code.co_name == "wait" and frame.f_code.co_filename == threading.__file__
