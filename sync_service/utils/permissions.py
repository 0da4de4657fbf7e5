"""Permissions of an object, from its user metadata (SPEC §4)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sync_service.models.config import parse_permissions
from sync_service.models.data_models import canonical_json

logger = logging.getLogger(__name__)


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
