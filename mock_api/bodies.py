"""Reading request bodies: streaming uploads to disk, draining leftovers, parsing JSON objects."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect


def detail(status: int, message: str) -> JSONResponse:
    """An error answer in the API's ``{"detail": ...}`` shape."""
    return JSONResponse({"detail": message}, status_code=status)


async def drain(request: Request) -> None:
    """Read whatever is left of the request body so the client never hits a broken pipe."""
    try:
        async for _ in request.stream():
            pass
    except (RuntimeError, ClientDisconnect):
        # RuntimeError: the body was already read to the end; ClientDisconnect: nobody to answer.
        return


async def spool(request: Request, tmp_dir: Path) -> tuple[Path, int, str]:
    """Stream the body to a new temp file in ``tmp_dir`` while hashing it; return (file, size, sha256)."""
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
    tmp = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        # Plain writes of ASGI-sized chunks are fast enough for the loop; a thread hop per chunk is not.
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)
            async for chunk in request.stream():
                fh.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, size, digest.hexdigest()


async def read_json_object(request: Request) -> dict[str, Any] | None:
    """Parse the body as a JSON object, or return None when it is not one."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None
