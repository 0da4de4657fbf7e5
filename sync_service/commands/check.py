"""``check``: compare the bucket, the records and the file manager; exit 1 when they differ.

What an operator runs after an incident. It reads only: nothing is planned or changed.
"""

from __future__ import annotations

import argparse
import json

from sync_service.commands import EXIT_FAILED, EXIT_OK
from sync_service.models.config import SyncConfig
from sync_service.runs.sync_service import SyncService
from sync_service.sources.checker import KINDS, CheckResult


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Print the differences (text or JSON); 0 when the three sides agree, 1 otherwise."""
    result = SyncService(config).check()
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json else render(result))
    return EXIT_OK if result.consistent else EXIT_FAILED


def render(result: CheckResult) -> str:
    """The differences, one a line, then what each side holds."""
    width = max(len(kind) for kind in KINDS)
    lines = [f"{d.kind:<{width}}  {d.path}" + (f"  ({d.detail})" if d.detail else "")
             for d in result.differences]
    listed = ("cannot list its files (GET /files): not compared" if result.file_manager_files is None
              else f"{result.file_manager_files} files")
    lines += [f"bucket        {result.bucket_objects} objects",
              f"records       {result.records}",
              f"file manager  {listed}"]
    if result.pending_operations:
        lines.append(f"note          {result.pending_operations} operations pending: a sync is under "
                     "way or was interrupted; differences they cover go once they are applied")
    if result.consistent:
        lines.append("consistent: the bucket, the records and the file manager agree")
    else:
        counts = result.to_dict()["counts"]
        lines.append(f"{len(result.differences)} differences: "
                     + ", ".join(f"{n} {kind}" for kind, n in counts.items())
                     + "; reconcile repairs what the bucket and the records disagree on")
    return "\n".join(lines)
