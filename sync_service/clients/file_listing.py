"""What the file manager says it holds (``GET /files``), for ``check``.

Not every file manager can list its files: a 404 or 405 there means "cannot tell", and the
check compares the bucket with the records only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sync_service.clients.infrastructure_api import InfrastructureAPI
from sync_service.errors import ApiError, PermanentApiError
from sync_service.utils.permissions import canonical_json


@dataclass(frozen=True)
class ListedFile:
    """One file as the file manager lists it."""

    path: str
    size: int
    sha256: str
    permissions: str


def list_files(api: InfrastructureAPI) -> dict[str, ListedFile] | None:
    """Every file the file manager holds, by path; None when it cannot list them."""

    async def fetch() -> dict[str, Any]:
        async with api.connect() as session:
            return await session.send("GET", "/files", key=None)

    try:
        answer = asyncio.run(fetch())
    except PermanentApiError as exc:
        if exc.status in (404, 405, 501):
            return None
        raise
    rows = answer.get("answer")
    if not isinstance(rows, list):
        raise ApiError("GET /files did not answer a list of files")
    listed = {}
    for row in rows:
        if isinstance(row, dict) and isinstance(row.get("path"), str):
            permissions = row.get("permissions")
            listed[row["path"]] = ListedFile(
                row["path"], int(row.get("size") or 0), str(row.get("sha256") or ""),
                canonical_json(permissions) if isinstance(permissions, dict) else "")
    return listed
