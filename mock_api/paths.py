"""Which paths the mock accepts: the file manager's rule of SPEC §3, written here on its own
(not imported from ``sync_service``, so a mistake in the service's rule cannot hide in both),
plus the storage backend's own limits."""

from __future__ import annotations

import re
from typing import Any

from mock_api.storage import Storage

#: SPEC §3: at most 1024 bytes of UTF-8.
MAX_PATH_BYTES = 1024
#: SPEC §3: NUL and the other C0 controls, DEL, the C1 controls, and the backslash.
FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\\]")


def spec_path_error(path: str) -> str | None:
    """Why SPEC §3 refuses ``path``, or None when it is a valid file-manager path."""
    if path == "":
        return "empty path"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if size > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes"
    if path[0] == "/":
        return "leading '/'"
    bad = FORBIDDEN.search(path)
    if bad:
        char = bad.group()
        return "backslash" if char == "\\" else f"control character U+{ord(char):04X}"
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        return "empty, '.' or '..' segment"
    return None


def path_problem(path: Any, storage: Storage, field: str = "path") -> str | None:
    """Return the 400 detail for an unacceptable ``path`` (named ``field`` in the request), or None."""
    if not isinstance(path, str):
        return f"field '{field}' must be a string"
    reason = spec_path_error(path) or storage.path_error(path)
    return f"invalid path: {reason}" if reason else None
