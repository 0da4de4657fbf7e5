"""``worker``: claim pending operations from the shared PostgreSQL database and apply them."""

from __future__ import annotations

import argparse
import json
import logging

from sync_service.commands import EXIT_FAILED, EXIT_OK
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig
from sync_service.runs.sync_service import SyncService
from sync_service.utils.clock import Clock
from sync_service.utils.stop_signals import stop_on_signals

logger = logging.getLogger(__name__)


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Work until SIGTERM or SIGINT (or, with ``--until-idle``, until nothing is pending or left
    to list); print what this worker applied; 1 when any operation failed."""
    if not config.database_url:
        raise ConfigError("worker needs DATABASE_URL=postgresql://…: workers share operations "
                          "through PostgreSQL; with SQLite one process syncs (initial-sync, "
                          "incremental-sync or daemon)")
    config.require_bucket()
    stop = stop_on_signals("the batch in flight")
    service = SyncService(config, clock=Clock(stop), interactive=False, long_lived=True)
    report = service.work(until_idle=args.until_idle)
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return EXIT_OK if report.failed == 0 else EXIT_FAILED
