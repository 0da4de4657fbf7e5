"""The service's rule for what counts as a valid file-manager path (SPEC §3).

The mock API keeps its own rule, written from the SPEC (``mock_api/paths.py``): a rule the two
shared could not catch the service's mistakes.
"""

from __future__ import annotations

MAX_PATH_BYTES = 1024


def path_error(path: str) -> str | None:
    """Return why ``path`` is not a valid file-manager path, or None when it is valid."""
    if not path:
        return "empty path"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if len(encoded) > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes"
    if path.startswith("/"):
        return "leading '/'"
    for char in path:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:  # C0, DEL and C1 (U+0085 is a line break)
            return f"control character U+{code:04X}"
        if char == "\\":
            return "backslash (a separator on some file managers)"
    for segment in path.split("/"):
        if segment == "":
            return "empty segment"
        if segment in (".", ".."):
            return f"'{segment}' segment"
    return None


def is_valid_path(path: str) -> bool:
    """True when ``path`` may be sent to the file manager."""
    return path_error(path) is None


def is_folder_marker(key: str, size: int) -> bool:
    """True for the zero-byte ``…/`` objects that consoles create to stand for folders."""
    return key.endswith("/") and size == 0


def unsyncable(key: str, path: str, size: int) -> tuple[str, str] | None:
    """Why a listed object is not synced: ``("folder_marker", …)`` or ``("invalid_key", why)``;
    None when it is synced."""
    if is_folder_marker(key, size):
        return "folder_marker", "folder marker"
    reason = path_error(path)
    if reason is not None:
        return "invalid_key", f"invalid key ({reason})"
    return None


def parent_folder(path: str) -> str:
    """The folder part of ``path`` ('' at the top level)."""
    head, _, _ = path.rpartition("/")
    return head


def move_kind(source: str, target: str) -> str:
    """``rename`` when ``target`` is in the folder of ``source``, ``move`` otherwise (SPEC §2)."""
    return "rename" if parent_folder(source) == parent_folder(target) else "move"
