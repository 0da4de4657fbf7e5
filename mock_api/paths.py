"""Which paths the mock accepts: the shared file-manager rule plus the storage backend's own limits."""

from __future__ import annotations

from typing import Any

from mock_api.storage import Storage
from sync_service.utils.paths import path_error


def path_problem(path: Any, storage: Storage, field: str = "path") -> str | None:
    """Return the 400 detail for an unacceptable ``path`` (named ``field`` in the request), or None."""
    if not isinstance(path, str):
        return f"field '{field}' must be a string"
    reason = path_error(path) or storage.path_error(path)
    return f"invalid path: {reason}" if reason else None
