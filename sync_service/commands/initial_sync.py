"""``initial-sync``: deliver the whole bucket to the file manager."""

from __future__ import annotations

import argparse
import json
from collections import Counter

from sync_service.commands import EXIT_FAILED, EXIT_OK
from sync_service.commands.plan_output import entry_json, entry_label, entry_text
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig
from sync_service.runs.sync_service import SyncService


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Run an initial sync and print its report; 1 when any operation failed."""
    if args.json and not args.dry_run:
        raise ConfigError("initial-sync --json prints a plan: give it with --dry-run")
    service = SyncService(config)
    if args.dry_run:
        planned = service.initial_sync_plan()
        if args.json:  # JSON lines and nothing else on stdout: the log goes to stderr
            for entry in planned:
                print(entry_json(entry))
            return EXIT_OK
        for entry in planned:
            print(entry_text(entry))
        counts = Counter(entry_label(entry).split(" (")[0] for entry in planned)
        print(f"dry run: {', '.join(f'{n} {a}' for a, n in counts.items()) or 'nothing to do'}")
        return EXIT_OK
    report = service.initial_sync(plan_only=args.plan_only)
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return EXIT_OK if report.failed == 0 else EXIT_FAILED
