"""Wake-ups when work is added (SPEC §9): a claimer or a lister with nothing to do waits for one
instead of polling the tables.

Stores call ``Database.work_added()`` where they add what someone may claim: operations
planned, claims given back, outcomes recorded (the next phase of a plan may be free now), key
ranges found or given back. The database wakes every waiter of this process once the
transaction commits, and on PostgreSQL also sends ``NOTIFY`` (delivered at commit) to the
processes of other machines, which one listening connection per process turns into the same
wake-up. A waiter also wakes after its timeout: a slow poll stays as the fallback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: The PostgreSQL channel that says "work was added" to every process on the database.
CHANNEL = "s3sync_work"


class Wakeup:
    """One waiter's wake-up: set when work is added, cleared when the waiter looks again."""

    def __init__(self, wakeups: Wakeups) -> None:
        self._event = threading.Event()
        self._wakeups = wakeups

    def set(self) -> None:
        """Wake the waiter."""
        self._event.set()

    def wait(self, timeout: float, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Wait until work is added (True) or ``timeout`` passes or ``stopping()`` (False);
        a wake-up that came while the waiter was busy is not lost."""
        remaining = timeout
        while remaining > 0 and not stopping():
            step = min(remaining, 0.5)
            if self._event.wait(step):
                self._event.clear()
                return True
            remaining -= step
        return False

    def close(self) -> None:
        """Stop receiving wake-ups."""
        self._wakeups.unsubscribe(self)


class Wakeups:
    """The wake-ups of one process's waiters on one database."""

    def __init__(self, listen: Callable[[Callable[[], None], threading.Event], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._waiters: list[Wakeup] = []
        self._listen = listen
        self._listening: threading.Thread | None = None
        self._stop = threading.Event()

    def subscribe(self) -> Wakeup:
        """A wake-up for one waiter (a claim loop, a lister)."""
        wakeup = Wakeup(self)
        with self._lock:
            self._waiters.append(wakeup)
            if self._listen is not None and self._listening is None:
                self._listening = threading.Thread(target=self._listen, args=(self.wake_all, self._stop),
                                                   name="wakeups", daemon=True)
                self._listening.start()
        return wakeup

    def unsubscribe(self, wakeup: Wakeup) -> None:
        """Forget a waiter."""
        with self._lock:
            if wakeup in self._waiters:
                self._waiters.remove(wakeup)

    def wake_all(self) -> None:
        """Wake every waiter of this process."""
        with self._lock:
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.set()

    def close(self) -> None:
        """Stop listening (the database closes): the listener ends within a second, on its
        own (a daemon thread: nobody waits for it)."""
        self._stop.set()


def listen_with(connect: Callable[[], Any], shown: str) -> Callable[[Callable[[], None], threading.Event], None]:
    """A listener for ``Wakeups`` on PostgreSQL: one connection that LISTENs on ``CHANNEL`` and
    wakes this process's waiters at every notification; reconnected after an outage (the
    waiters are woken then too: a notification may have been missed meanwhile)."""
    def listen(wake: Callable[[], None], stop: threading.Event) -> None:
        failing = False
        while not stop.is_set():
            try:
                with connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if failing:
                        wake()
                        failing = False
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            wake()
            except Exception as exc:  # any failure of the listening connection: reconnect
                if not failing:
                    logger.info("wake-ups from %s paused (%s); polling until it answers", shown,
                                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                failing = True
                stop.wait(2.0)
    return listen
