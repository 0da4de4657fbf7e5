"""Running a coroutine to completion from code that is not async."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` in a new event loop: uvloop's where it is installed, asyncio's otherwise.

    uvloop measured a little faster for the executor (3000 × 1 KiB initial syncs, two runs
    each on a loaded 2-core machine: 3.8–4.3 s of CPU and 7.9–9.2 s against asyncio's 4.2–4.4 s
    and 9.4–10.1 s).
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)
