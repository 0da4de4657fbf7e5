"""The service's version: a source checkout's ``pyproject.toml`` when the code runs from one
(``python -m sync_service.main``), else the installed package's metadata (``s3-sync``), else
``unknown``."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "s3-sync-service"
#: Beside the package in a checkout; absent where pip installed it.
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
UNKNOWN = "unknown"


def package_version(pyproject: Path = PYPROJECT) -> str:
    """The version this code runs as."""
    # The checkout first: an older copy installed in the same environment must not speak for it.
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        project = {}
    if project.get("name") == DISTRIBUTION and isinstance(project.get("version"), str):
        return str(project["version"])
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN
