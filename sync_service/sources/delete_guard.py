"""The delete guard of reconcile: a repair that would delete more than a share of the records
is refused before anything changes, or (the daemon) its deletes are held back while the rest of
the repair goes ahead, kept for ``status`` and ``/health`` until a repair within the limit."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from sync_service.errors import RefusedError
from sync_service.sources.reconciler import Drift
from sync_service.store.database_manager import DatabaseManager

logger = logging.getLogger(__name__)

#: Setting: the deletes the last reconcile held back because they were over the guard (JSON).
HELD_DELETES = "reconcile_held_deletes"
#: Paths of held deletes kept for the status.
HELD_PATHS_SHOWN = 20
#: The share of the records a repair may delete without ``--max-delete`` (at least 1 file).
DEFAULT_SHARE = 0.1


class DeleteGuard:
    """Checks a drift's deletes against the limit, and remembers those it held back."""

    def __init__(self, db: DatabaseManager) -> None:
        self.db = db

    def limit(self, max_delete: int | None) -> int:
        """The deletes a repair may make: ``max_delete``, or 10 % of the records (at least 1)."""
        if max_delete is not None:
            return max_delete
        return max(1, math.ceil(DEFAULT_SHARE * self.db.get_record_count()))

    def check(self, drift: Drift, max_delete: int | None, *, hold: bool, run_id: str) -> Drift:
        """``drift`` as it may be repaired: unchanged within the limit (and nothing held any
        more); over it, ``RefusedError``, or with ``hold`` its deletes moved to ``held``."""
        limit = self.limit(max_delete)
        if len(drift.deleted) <= limit:
            self.db.runs.delete_setting(HELD_DELETES)
            return drift
        self.db.set_setting(HELD_DELETES, json.dumps({
            "run_id": run_id, "count": len(drift.deleted), "limit": limit,
            "paths": drift.deleted[:HELD_PATHS_SHOWN]}, ensure_ascii=False))
        message = (f"reconcile would delete {len(drift.deleted)} files, more than the limit of "
                   f"{limit}; check the bucket and prefix, or run reconcile --max-delete "
                   f"{len(drift.deleted)}")
        if not hold:
            raise RefusedError(message)
        logger.warning("%s: the deletes are held, the rest of the repair goes ahead", message)
        drift.held, drift.deleted = drift.deleted, []
        return drift

    def held(self) -> dict[str, Any] | None:
        """The deletes the last reconcile held back (count, limit, some paths), if any."""
        held = self.db.get_setting(HELD_DELETES)
        return json.loads(held) if held else None
