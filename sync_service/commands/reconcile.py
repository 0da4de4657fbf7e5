"""``reconcile``: repair drift between the bucket and the records."""

from __future__ import annotations

import argparse
import json

from sync_service.commands import EXIT_FAILED, EXIT_OK
from sync_service.models.config import SyncConfig
from sync_service.runs.sync_service import SyncService


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """List the bucket, compare, and apply the repair (or print the drift with --dry-run)."""
    drift, report = SyncService(config).reconcile(max_delete=args.max_delete, dry_run=args.dry_run)
    print(f"drift: {len(drift.created)} new, {len(drift.changed)} changed, "
          f"{len(drift.deleted)} deleted objects")
    if report is None:
        for label, paths in (("new", drift.created), ("changed", drift.changed),
                             ("deleted", drift.deleted)):
            for path in paths:
                print(f"{label:<9}{path}")
        print("dry run: nothing was changed")
        return EXIT_OK
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return EXIT_OK if report.failed == 0 else EXIT_FAILED
