"""Running a coroutine to completion from code that is not async."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` in a new event loop: uvloop's where it is installed (it measures faster:
    see the README's performance section), asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)
