"""``daemon``: sync cycles when events arrive and every SYNC_INTERVAL seconds, with /health and
/metrics."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sync_service.commands import EXIT_OK
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig
from sync_service.runs.daemon import Daemon
from sync_service.runs.metrics import SyncMetrics
from sync_service.runs.sync_service import SyncService
from sync_service.utils.clock import Clock
from sync_service.utils.stop_signals import stop_on_signals
from sync_service.web.server import start_metrics_server
from sync_service.web.status_cache import StatusCache

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# In DATA_DIR once a daemon has run on PostgreSQL: the (masked) URL of the database that holds the state.
STATE_MOVED = "state-in-postgresql"


def keep_to_the_database(config: SyncConfig) -> None:
    """Refuse to start on SQLite in a data folder whose daemon has planned into PostgreSQL.

    A daemon that comes back on SQLite (in Compose: a later ``up`` without SYNC_DATABASE_URL)
    would start over from an empty file while workers go on applying the plans in PostgreSQL:
    two states, and every object delivered again. Going back to SQLite is a choice: delete the
    file this names."""
    marker = config.data_dir / STATE_MOVED
    if config.database_url:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(config.database_shown + "\n")
    elif marker.exists():
        raise ConfigError(f"this data folder's state is in PostgreSQL ({marker.read_text().strip()}) "
                          "and DATABASE_URL is empty: set DATABASE_URL (in Compose, SYNC_DATABASE_URL), "
                          f"or delete {marker} to start over on SQLite at {config.database_path}")


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; restart in place on a source change with LIVE_RELOAD."""
    config.require_bucket()
    keep_to_the_database(config)
    stop = stop_on_signals("the operation in flight")
    metrics = SyncMetrics(config.sync_interval)
    service = SyncService(config, clock=Clock(stop), interactive=False, on_finish=metrics.observe_run,
                          long_lived=True)
    try:
        server = start_metrics_server(metrics, config.metrics_port,
                                      status=StatusCache(service.status, service.db.database,
                                                         cycles=metrics.cycle_state))
    except OSError as exc:
        raise ConfigError(f"METRICS_PORT {config.metrics_port} cannot be served: {exc}") from exc
    logger.info("status page on http://0.0.0.0:%d/ (JSON at /api/status), /livez, /readyz, /health "
                "and /metrics",
                config.metrics_port)
    watcher = None
    if config.live_reload:
        from sync_service.utils.live_reload import ReloadWatcher

        watcher = ReloadWatcher(PACKAGE_DIR, stop)
        watcher.start()
        logger.info("live reload: watching %s", PACKAGE_DIR)
    try:
        Daemon(service, metrics, service.event_watch()).run()
    finally:
        server.shutdown()
        server.server_close()
        if watcher is not None:
            watcher.close()
    if watcher is not None and watcher.requested:
        logger.info("live reload: restarting")
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "sync_service.main", "daemon"])
    return EXIT_OK
