"""Stopping a long-running command gracefully on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)


def stop_on_signals(finishing: str) -> threading.Event:
    """An event set by SIGTERM or SIGINT (logged with ``finishing``: what the command completes
    before it stops), for a ``Clock`` that the command's loops watch."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("%s received: finishing %s", signal.Signals(signum).name, finishing)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
