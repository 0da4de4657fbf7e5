"""Large objects read as several ranged GETs at once, handed on in order as one stream.

One GET of a 1 GiB object is one TCP stream: its pace is one connection's. Above a threshold
the object is read in windows (``bytes=start-end``), ``parallel`` of them in flight, and the
windows' bytes are handed on in order, so the file manager still receives one stream. A window
ahead of the one being handed on is held until its turn, so memory stays within ``parallel``
windows whatever the object's size. Every window is read only of the version first opened
(If-Match on its etag), and a window that ends short fails the read.

The windows are over any store that can open a byte range (``open_range``), not only S3.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from sync_service.errors import ObjectError

MIB = 1024 * 1024
#: Objects larger than this are read in ranged windows (a few windows at least: below it, one
#: GET is as fast and costs fewer requests).
DEFAULT_THRESHOLD = 64 * MIB
DEFAULT_WINDOW = 16 * MIB
DEFAULT_PARALLEL = 4


class RangeBody(Protocol):
    """An open ranged read: its bytes in chunks, then closed."""

    def chunks(self) -> AsyncIterator[bytes]:
        """The range's bytes, in order."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


#: Opens the bytes ``start`` to ``end`` (inclusive) of the object being read.
OpenRange = Callable[[int, int], Awaitable[RangeBody]]


@dataclass(frozen=True)
class RangedGets:
    """When and how objects are read in ranged windows (``RANGED_GET_*``)."""

    threshold: int = DEFAULT_THRESHOLD
    window: int = DEFAULT_WINDOW
    parallel: int = DEFAULT_PARALLEL

    def applies_to(self, size: int) -> bool:
        """True when an object of ``size`` bytes is read in ranged windows."""
        return self.parallel > 1 and size > self.threshold and size > self.window

    def windows(self, size: int) -> list[tuple[int, int]]:
        """The (first, last) byte of each window of an object of ``size`` bytes."""
        return [(start, min(start + self.window, size) - 1) for start in range(0, size, self.window)]


async def windowed_chunks(open_range: OpenRange, size: int, settings: RangedGets) -> AsyncIterator[bytes]:
    """The ``size`` bytes of an object in order, read as ``settings.parallel`` ranged windows at
    a time."""
    windows = deque(settings.windows(size))
    in_flight: deque[tuple[asyncio.Task[None], asyncio.Queue[bytes | BaseException | None]]] = deque()

    async def fetch(first: int, last: int, queue: asyncio.Queue[bytes | BaseException | None]) -> None:
        got = 0
        try:
            body = await open_range(first, last)
            try:
                async for chunk in body.chunks():
                    got += len(chunk)
                    queue.put_nowait(chunk)
            finally:
                body.close()
            if got != last - first + 1:
                raise ObjectError(f"bytes {first}-{last}: {got} bytes arrived, "
                                  f"{last - first + 1} expected")
        except BaseException as exc:  # handed to the reader, in order, as the window's end
            queue.put_nowait(exc)
            return
        queue.put_nowait(None)

    try:
        while windows or in_flight:
            while windows and len(in_flight) < settings.parallel:
                first, last = windows.popleft()
                queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
                in_flight.append((asyncio.create_task(fetch(first, last, queue)), queue))
            _, head = in_flight[0]
            while (item := await head.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
            in_flight.popleft()
    finally:
        for task, _ in in_flight:
            task.cancel()
        await asyncio.gather(*(task for task, _ in in_flight), return_exceptions=True)
