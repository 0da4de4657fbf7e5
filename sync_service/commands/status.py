"""``status``: what the service holds and whether the bucket (S3, GCS or Azure), the API and the database answer."""

from __future__ import annotations

import argparse
import time
from typing import Any

from sync_service.commands import EXIT_FAILED, EXIT_OK
from sync_service.models.config import SyncConfig
from sync_service.runs.health import cycle_state_of, judge
from sync_service.runs.status import initial_sync_summary, lag_summary, status_json
from sync_service.runs.sync_service import SyncService


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Print the status as text or JSON; 1 when a live check fails."""
    status = SyncService(config).get_sync_status(live=True)
    # The daemon's verdict, judged on the runs the database holds (this process cannot know
    # whether the daemon's next cycle is overdue: its /readyz can).
    status["health"] = judge(status, cycle_state_of(status["recent_runs"]), time.time()).to_dict()
    print(status_json(status) if args.json else render(status))
    healthy = all(check["ok"] for check in status.get("checks", {}).values())
    return EXIT_OK if healthy else EXIT_FAILED


def render(status: dict[str, Any]) -> str:
    """The status as aligned text for a terminal."""
    lines = [
        f"health        {status['health']['status']}: {status['health']['reason']}",
        f"database      {status['database']}",
        f"bucket        {status['bucket'] or '(not set)'}"
        + (f"  prefix {status['prefix']}" if status["prefix"] else ""),
        f"file manager  {status['api']}",
        f"records       {status['records']}",
        f"sync running  {'yes' if status['sync_running'] else 'no'}",
        f"initial sync  {initial_sync_summary(status['initial_sync'])}",
        f"operations    {status['operations']['pending']} pending, "
        f"{status['operations']['failed']} failed",
        f"event position {status['event_position'] or '(none)'}",
        f"event source  {_source_line(status.get('event_source') or {})}",
        f"event lag     {lag_summary(status.get('event_lag_s'))} (last report window)",
        f"dead letters  {status['dead_letters']}",
        f"reconcile     {_reconcile_line(status['reconcile'])}",
        "last runs:",
    ]
    if not status["last_runs"]:
        lines.append("  (none yet)")
    for mode, run_info in status["last_runs"].items():
        lines.append(
            f"  {mode:<17} {run_info['status']:<11} started {run_info['started_at']}"
            + (f", {run_info['duration_s']}s" if run_info.get("duration_s") is not None else "")
            + (f", {run_info['succeeded']} ok, {run_info['failed']} failed, "
               f"{run_info['skipped']} skipped" if run_info.get("succeeded") is not None else "")
        )
    for failure in status["recent_failures"]:
        lines.append(f"  failed {failure['op']} {failure['path']!r}: {failure['error']}")
    lines.append("checks:")
    for name, check in status.get("checks", {}).items():
        result = f"ok ({check['latency_ms']} ms)" if check["ok"] else f"FAILED: {check['error']}"
        lines.append(f"  {name:<9} {result}")
    return "\n".join(lines)


def _reconcile_line(state: dict[str, Any]) -> str:
    every = (f"every {state['interval_s']}s in the daemon" if state["interval_s"]
             else "off in the daemon (RECONCILE_INTERVAL=0)")
    line = every + (f", last {state['last_at']}" if state["last_at"] else ", none yet")
    held = state.get("held_deletes")
    if held:
        line += (f"; HELD {held['count']} deletes over the limit of {held['limit']} "
                 f"(run {held['run_id']}): check the bucket, then reconcile --max-delete {held['count']}")
    return line


def _source_line(source: dict[str, Any]) -> str:
    if "error" in source:
        return f"{source.get('source')}: FAILED: {source['error']}"
    if source.get("source") == "nats":
        return (f"nats stream {source['stream']} consumer {source['consumer']}: {source['pending']} pending, "
                f"{source['ack_pending']} awaiting ack, {source['redelivered']} redelivered")
    if source.get("source") == "file":
        return f"file spool {source['folder']}: {source['pending_files']} files waiting"
    return str(source.get("source", "?"))
