"""``publish-event '<json>'``: put one event on the configured source."""

from __future__ import annotations

import argparse

from sync_service.commands import EXIT_OK
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig
from sync_service.models.event_parser import EventError, parse_message
from sync_service.runs.sync_service import SyncService, close_source


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Validate the event, publish it, print where it went."""
    try:
        events = parse_message(args.event, bucket=config.customer_s3_bucket,
                               prefix=config.customer_s3_prefix)
    except EventError as exc:
        raise ConfigError(f"not a valid event: {exc}") from exc
    source = SyncService(config).event_source()
    try:
        where = source.publish(args.event)
    finally:
        close_source(source)
    print(f"published {len(events)} event(s) to {where}")
    return EXIT_OK
