"""``import-state``: copy an SQLite state into PostgreSQL, to move a service to it without
delivering every object again."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from sync_service.commands import EXIT_OK
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig
from sync_service.store.postgres_backend import PostgresDatabase
from sync_service.store.run_lock import SyncLock, lock_for
from sync_service.store.sqlite_backend import SQLiteDatabase

logger = logging.getLogger(__name__)


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Copy the SQLite state (``--from``, else ``DATABASE_PATH``) into the empty PostgreSQL
    database at ``DATABASE_URL``, holding both databases' run locks; print what was copied."""
    if not config.database_url:
        raise ConfigError("import-state copies an SQLite state into PostgreSQL: set "
                          "DATABASE_URL=postgresql://… to the database to fill")
    source = Path(args.source) if args.source else config.database_path
    if not source.is_file():
        raise ConfigError(f"no SQLite state at {source}: pass --from PATH or set DATABASE_PATH")
    with SyncLock(source), lock_for(config.database_url):
        sqlite = SQLiteDatabase(source)
        postgres = PostgresDatabase(config.database_url)
        try:
            copied = postgres.import_from(sqlite)
        finally:
            postgres.close()
            sqlite.close()
    logger.info("imported %s into %s: %d records, %d operations, %d runs", source,
                config.database_shown, copied["files"], copied["operations"], copied["runs"])
    print(json.dumps({"from": str(source), "to": config.database_shown, "copied": copied}, indent=2))
    return EXIT_OK
