"""Development live reload: stop gracefully and restart when a ``.py`` file changes."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

logger = logging.getLogger(__name__)


class ReloadWatcher(FileSystemEventHandler):
    """Sets ``stop`` and remembers that a reload was asked for when a watched file changes."""

    def __init__(self, folder: Path, stop: threading.Event) -> None:
        self.folder = folder
        self.stop = stop
        self.requested = False
        self._observer: Any = None

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = str(event.src_path)
        if event.event_type in ("modified", "created", "moved", "closed") and path.endswith(".py"):
            if not self.requested:
                logger.info("live reload: %s changed; restarting after the current operation", path)
            self.requested = True
            self.stop.set()

    def start(self) -> None:
        """Watch the folder from a background thread."""
        self._observer = Observer()
        self._observer.schedule(self, str(self.folder), recursive=True)
        self._observer.daemon = True
        self._observer.start()

    def close(self) -> None:
        """Stop watching."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
