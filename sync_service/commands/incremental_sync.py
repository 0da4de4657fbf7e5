"""``incremental-sync``: replay events, diff, apply the plan."""

from __future__ import annotations

import argparse
import json

from sync_service.commands import EXIT_FAILED, EXIT_OK
from sync_service.commands.plan_output import render_plan
from sync_service.models.config import SyncConfig
from sync_service.runs.sync_service import SyncService


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Run an incremental sync (or, with --dry-run, print its plan); 1 when any operation failed."""
    service = SyncService(config)
    if args.dry_run:
        plan, replay = service.incremental_sync_plan()
        print(render_plan(plan))
        print(f"dry run: {replay.applied} events would apply, {replay.rejected} would be rejected; "
              "nothing was changed")
        return EXIT_OK
    report = service.incremental_sync()
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return EXIT_OK if report.failed == 0 else EXIT_FAILED
