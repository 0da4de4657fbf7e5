"""Permissions of an object, from its user metadata."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the one spelling permissions are compared in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_permissions(raw: str, *, source: str) -> dict[str, object] | None:
    """Parse a permissions JSON object; log a warning and return None when it is not one."""
    try:
        value = json.loads(raw)
    except (ValueError, TypeError):
        logger.warning("%s is not valid JSON; using the default permissions", source)
        return None
    if not isinstance(value, dict):
        logger.warning("%s is not a JSON object; using the default permissions", source)
        return None
    return value


def permissions_from_metadata(
    metadata: Mapping[str, str], *, key: str, default: Mapping[str, object], path: str = ""
) -> str:
    """Canonical JSON permissions from ``x-amz-meta-<key>`` (case-insensitive), else ``default``."""
    wanted = key.lower()
    for name, value in metadata.items():
        if name.lower() == wanted:
            parsed = parse_permissions(value, source=f"permissions metadata of {path!r}")
            if parsed is not None:
                return canonical_json(parsed)
            break
    return canonical_json(dict(default))
