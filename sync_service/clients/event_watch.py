"""Knowing that events are waiting, without reading them: what wakes the daemon (SPEC §1).

``Arrivals`` is what a watch tells: the moment the first event arrived since the daemon last
looked. ``SpoolWatch`` watches ``EVENTS_DIR`` (a file-system watch through watchdog, a poll of
the folder where the platform offers none); ``NatsWatch`` holds a plain NATS subscription on the
stream's subject (a message published there is seen as it is stored) and asks the durable
consumer for its pending count now and then, so messages published while it was away are seen
too. Neither consumes anything: the cycle's replay reads, applies and acknowledges.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

#: Seconds between looks where no notification comes: the folder poll, the consumer's count.
POLL_S = 1.0
#: How often a waiting daemon looks at its stop signal.
STOP_CHECK_S = 0.1


class Arrivals:
    """When the first event arrived since the daemon last took the arrivals (monotonic time)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._first: float | None = None

    def note(self) -> None:
        """An event arrived now (the first one since the last ``take`` is remembered)."""
        with self._changed:
            if self._first is None:
                self._first = time.monotonic()
                self._changed.notify_all()

    def wait(self, timeout: float, stop: threading.Event) -> float | None:
        """Wait up to ``timeout`` seconds for an arrival, or until ``stop`` is set; the first
        arrival's time, or None. An arrival that came while nobody waited is not lost."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._first is None and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, STOP_CHECK_S))
            return self._first

    def take(self) -> float | None:
        """The first arrival's time, forgotten: what arrives from now on is new."""
        with self._changed:
            first, self._first = self._first, None
            return first


class EventWatch(Protocol):
    """Notes event arrivals in an ``Arrivals`` until closed."""

    arrivals: Arrivals

    def start(self) -> EventWatch:
        """Begin watching."""
        ...

    def close(self) -> None:
        """Stop watching."""
        ...


class SpoolWatch:
    """Watches the spool folder for ``*.jsonl`` files written or renamed into it."""

    def __init__(self, folder: Path, arrivals: Arrivals | None = None, *,
                 poll_s: float = POLL_S) -> None:
        self.folder = folder
        self.arrivals = arrivals or Arrivals()
        self.poll_s = poll_s
        self._observer: Any = None
        self.method = ""

    def start(self) -> SpoolWatch:
        """Watch with the platform's notifications (inotify …), else by polling the folder."""
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        self.folder.mkdir(parents=True, exist_ok=True)
        handler = _SpoolHandler(self.folder, self.arrivals)
        try:
            observer: Any = Observer()
            observer.schedule(handler, str(self.folder), recursive=False)
            observer.start()
            self.method = "notifications"
        except OSError as exc:  # no inotify (limits reached, some network file systems)
            logger.warning("no file-system notifications for %s (%s): polling every %.1fs",
                           self.folder, exc, self.poll_s)
            observer = PollingObserver(timeout=self.poll_s)
            observer.schedule(handler, str(self.folder), recursive=False)
            observer.start()
            self.method = "poll"
        self._observer = observer
        return self

    def close(self) -> None:
        """Stop the observer."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None


class _SpoolHandler:
    """A watchdog handler: a ``*.jsonl`` file appearing or changing in the folder itself."""

    def __init__(self, folder: Path, arrivals: Arrivals) -> None:
        self.folder = folder.resolve()
        self.arrivals = arrivals

    def dispatch(self, event: Any) -> None:
        """Note an arrival for a spool file created, renamed into place or written."""
        if event.is_directory or event.event_type not in ("created", "moved", "modified", "closed"):
            return
        path = Path(str(event.dest_path if event.event_type == "moved" else event.src_path))
        # Moves into processed/ and the writers' partial files are not arrivals.
        if path.suffix == ".jsonl" and path.parent.resolve() == self.folder:
            self.arrivals.note()


class NatsWatch:
    """Watches a JetStream stream's subject, and its durable consumer's pending count."""

    def __init__(self, url: str, stream: str, subject: str, durable: str,
                 arrivals: Arrivals | None = None, *, poll_s: float = POLL_S) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.arrivals = arrivals or Arrivals()
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> NatsWatch:
        """Watch from a thread of its own (nats-py is asyncio; the daemon is not)."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()),
                                        name="nats-watch", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the watching thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    async def _watch(self) -> None:
        import nats
        from nats import errors as nats_errors
        from nats.js import errors as js_errors

        failures = (nats_errors.Error, js_errors.Error, OSError, asyncio.TimeoutError)
        warned = False
        while not self._stop.is_set():
            try:
                await self._subscribed(nats)
                warned = False
            except failures as exc:
                # The replay reports NATS errors; here they only delay a wake-up to the poll.
                if not warned:
                    logger.warning("NATS watch: %s: %s; trying again", type(exc).__name__, exc)
                    warned = True
            await asyncio.sleep(self.poll_s)

    async def _subscribed(self, nats: Any) -> None:
        async def quiet(exc: Exception) -> None:
            logger.debug("NATS watch: %s", exc)

        async def arrived(message: Any) -> None:
            self.arrivals.note()

        connection = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=2,
                                        reconnect_time_wait=0.5, name="s3-sync-service-watch",
                                        error_cb=quiet)
        try:
            await connection.subscribe(self.subject, cb=arrived)
            stream = connection.jetstream()
            next_poll = 0.0
            while not self._stop.is_set() and connection.is_connected:
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.poll_s
                    if await _pending(stream, self.stream, self.durable) > 0:
                        self.arrivals.note()
                await asyncio.sleep(STOP_CHECK_S)
        finally:
            if not connection.is_closed:
                await connection.close()


async def _pending(stream: Any, name: str, durable: str) -> int:
    """Messages the durable consumer has not been given yet (0 while it does not exist)."""
    from nats.js import errors as js_errors

    try:
        return int((await stream.consumer_info(name, durable)).num_pending or 0)
    except js_errors.NotFoundError:
        return 0
