"""``export-csv`` and ``diff``: the state CSV and the plan between two of them."""

from __future__ import annotations

import argparse

from sync_service.commands import EXIT_OK
from sync_service.commands.plan_output import render_plan
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig
from sync_service.planning.diff import diff_records
from sync_service.planning.plan_order import plan_operations
from sync_service.store.csv_processor import CSVProcessor
from sync_service.store.database_manager import DatabaseManager


def export_csv(config: SyncConfig, args: argparse.Namespace) -> int:
    """Export the current records to a state CSV and print its path."""
    processor = CSVProcessor(config.export_dir)
    path = processor.export(DatabaseManager(config.database).iter_records(), out=args.out)
    print(path)
    return EXIT_OK


def diff(config: SyncConfig, args: argparse.Namespace) -> int:
    """Print the ordered plan that turns OLD.csv into NEW.csv."""
    try:
        operations = list(diff_records(CSVProcessor.iter_records(args.old),
                                       CSVProcessor.iter_records(args.new)))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the state CSV: {exc}") from exc
    print(render_plan(plan_operations(operations)))
    return EXIT_OK

