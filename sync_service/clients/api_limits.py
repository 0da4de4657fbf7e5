"""The limits of one process toward the file manager (SPEC §4): ``API_MAX_RPS`` requests a second
over all calls, ``BWLIMIT`` upload bytes a second, and the pause a 429 or 503 with
``Retry-After`` asks of the whole client, not only of the call that got it.

After a pause the request rate starts again at half of what it was (the limit, or the rate the
client was running at when the limit is off) and grows by a tenth of it every second until it
is back (additive increase, multiplicative decrease): a file manager that asked for a breath
is not hit by every worker at once the moment the pause ends.

Both limits are schedules of reservations under a lock: a caller reserves its slot (a request,
or a chunk's bytes), then waits until that time in its own event loop. The state is shared by
every session of the client, whichever loop or thread it runs in. Time is injected as a
``monotonic`` function, so the arithmetic is tested without sleeping (``reserve_request``,
``reserve_bytes``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable

#: The slowest the recovery starts at, in requests a second.
MIN_RATE = 1.0
#: Steps from the rate after a pause back to the rate before it (one a second).
RECOVERY_STEPS = 10
#: The longest single sleep while waiting, so a stopping process notices within it.
WAIT_SLICE_S = 0.5


class ApiLimits:
    """The request rate, the upload bandwidth and the pause of one file-manager client."""

    def __init__(self, max_rps: float | None = None, bwlimit: float | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self.max_rps = max_rps
        self.bwlimit = bwlimit
        self.monotonic = monotonic or time.monotonic
        self._lock = threading.Lock()
        self._rate: float | None = max_rps  # None: unlimited
        self._next_request = 0.0
        self._next_byte = 0.0
        self._paused_until = 0.0
        self._recover_to: float | None = None  # the rate before the pause (None: not recovering)
        self._step = 0.0
        self._stepped_at = 0.0
        self._recent: deque[float] = deque()  # request starts of the last second

    @property
    def rate(self) -> float | None:
        """The request rate in force (None: unlimited)."""
        with self._lock:
            self._recover(self.monotonic())
            return self._rate

    def paused_for(self) -> float:
        """Seconds the pause has left (0: none)."""
        return max(0.0, self._paused_until - self.monotonic())

    def pause(self, seconds: float) -> None:
        """A 429 or 503 asked for ``seconds``: no call starts until then, and the rate halves."""
        with self._lock:
            now = self.monotonic()
            self._paused_until = max(self._paused_until, now + seconds)
            self._next_request = max(self._next_request, self._paused_until)
            self._recover(now)
            before = self._rate if self._rate is not None else max(MIN_RATE, self._observed(now))
            self._rate = max(MIN_RATE, before / 2)
            # Back to the limit; without one, to the fastest rate seen before a pause, then none.
            self._recover_to = self.max_rps if self.max_rps is not None else max(self._recover_to or 0.0, before)
            self._step = max(MIN_RATE / 2, self._recover_to / RECOVERY_STEPS)
            self._stepped_at = self._paused_until

    def reserve_request(self) -> float:
        """Reserve the next request's start; returns the seconds to wait for it."""
        with self._lock:
            now = self.monotonic()
            self._recover(now)
            start = max(now, self._paused_until)
            if self._rate is not None:
                start = max(start, self._next_request)
                self._next_request = start + 1.0 / self._rate
            self._observed(now)  # forget what is older than a second
            self._recent.append(start)
            return start - now

    def reserve_bytes(self, size: int) -> float:
        """Reserve the upload of ``size`` bytes; returns the seconds to wait before sending them
        (they are paid for before they go, so a whole object takes size / BWLIMIT)."""
        if self.bwlimit is None or size <= 0:
            return 0.0
        with self._lock:
            now = self.monotonic()
            self._next_byte = max(now, self._next_byte) + size / self.bwlimit
            return self._next_byte - now

    async def before_request(self, stopping: Callable[[], bool] = lambda: False) -> None:
        """Wait until this process may start a request: the pause, then the rate. A call
        reserved before a pause began waits for the pause too."""
        while True:
            wait = self.reserve_request()
            if wait > 0:
                await _sleep(wait, stopping)
            if self.paused_for() <= 0 or stopping():
                return

    async def before_upload(self, size: int, stopping: Callable[[], bool] = lambda: False) -> None:
        """Wait until ``size`` more bytes may be sent."""
        wait = self.reserve_bytes(size)
        if wait > 0:
            await _sleep(wait, stopping)

    def _recover(self, now: float) -> None:
        """Add a step to the rate for each whole second since the last, back to where it was."""
        if self._recover_to is None or now < self._stepped_at + 1.0:
            return
        steps = int((now - self._stepped_at) // 1.0)
        self._stepped_at += steps
        self._rate = (self._rate or MIN_RATE) + steps * self._step
        if self._rate >= self._recover_to:
            self._rate = self.max_rps  # the configured limit, or none
            self._recover_to = None

    def _observed(self, now: float) -> float:
        """Requests started in the last second."""
        while self._recent and self._recent[0] < now - 1.0:
            self._recent.popleft()
        return float(len(self._recent))


async def _sleep(seconds: float, stopping: Callable[[], bool]) -> None:
    """Sleep ``seconds`` in slices, returning early once ``stopping``."""
    deadline = time.monotonic() + seconds
    while not stopping():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, WAIT_SLICE_S))
