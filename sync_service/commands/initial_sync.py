"""``initial-sync``: deliver the whole bucket to the file manager."""

from __future__ import annotations

import argparse
import json
from collections import Counter

from sync_service.commands import EXIT_FAILED, EXIT_OK
from sync_service.models.config import SyncConfig
from sync_service.services.sync_service import SyncService


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Run an initial sync and print its report; 1 when any operation failed."""
    service = SyncService(config)
    if args.dry_run:
        planned = service.initial_sync_plan()
        for action, path in planned:
            print(f"{action:<19}{path}")
        counts = Counter(action.split(" (")[0] for action, _ in planned)
        print(f"dry run: {', '.join(f'{n} {a}' for a, n in counts.items()) or 'nothing to do'}")
        return EXIT_OK
    report = service.initial_sync(plan_only=args.plan_only)
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return EXIT_OK if report.failed == 0 else EXIT_FAILED
