"""Bearer-token check of the mock file manager."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.responses import JSONResponse


class BearerAuth:
    """Accepts every request when no token is set, else only ``Authorization: Bearer <token>``."""

    def __init__(self, token: str | None) -> None:
        # Kept as bytes only; the token is never logged or echoed.
        self._token = token.encode("utf-8") if token else None

    @property
    def enabled(self) -> bool:
        """True when a token is required."""
        return self._token is not None

    def allows(self, request: Request) -> bool:
        """True when ``request`` may proceed."""
        if self._token is None:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        # compare_digest takes the same time wherever the first wrong byte is.
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode("utf-8"), self._token)

    @staticmethod
    def denied() -> JSONResponse:
        """The 401 answer."""
        return JSONResponse(
            {"detail": "missing or wrong bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
