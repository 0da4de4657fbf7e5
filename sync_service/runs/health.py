"""The health verdict (SPEC §6), one pure function for ``/readyz``, ``/health``, the status page
and ``status``: **ok**, **degraded** or **failing**, with the reason.

* **failing** (not ready, 503): S3, the API or the database does not answer; the initial sync
  has not completed; the last cycle ended in an error before it could run its plan; no cycle
  has finished within ``2 x SYNC_INTERVAL + 60`` s; no cycle has run its plan yet.
* **degraded** (ready, 200): the last cycle ran its plan, but operations have failed (one object
  the service may not read must not make a healthy daemon look dead), or a reconcile held
  deletes back over the guard.
* **ok** (ready, 200): none of the above.

The daemon knows its own cycles (``CycleState``, kept by ``SyncMetrics``), including those that
ended before they could be recorded; ``status``, a separate process, reads them from the runs
the database holds and cannot tell whether a cycle is overdue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

OK = "ok"
DEGRADED = "degraded"
FAILING = "failing"
#: Run results of a cycle that ran its plan (SPEC §6: "last success").
RAN_ITS_PLAN = frozenset({"ok", "failed"})
OVERDUE_GRACE_S = 60.0


@dataclass(frozen=True)
class CycleState:
    """What the daemon knows of its own cycles (Unix times)."""

    last_result: str | None = None  # ok, failed, interrupted, error
    last_error: str | None = None
    last_finished: float | None = None
    last_success: float | None = None
    overdue: bool = False


@dataclass(frozen=True)
class Health:
    """The verdict and what it rests on."""

    status: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """True unless failing: ``/readyz`` and ``/health`` answer 200."""
        return self.status != FAILING

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``/health`` and ``/readyz``."""
        return {"status": self.status, "reason": self.reason, **self.details}


def overdue(last_finished: float | None, started: float, interval_s: float, now: float) -> bool:
    """True when no cycle has finished within ``2 x interval + 60`` s (of the start, before the first)."""
    reference = last_finished if last_finished is not None else started
    return now - reference > 2 * interval_s + OVERDUE_GRACE_S


def cycle_state_of(runs: list[dict[str, Any]]) -> CycleState:
    """The cycles as the database recorded them (newest first, as ``status`` lists them)."""
    finished = [run for run in runs if run.get("status") not in (None, "running")]
    last = finished[0] if finished else None
    success = next((run for run in finished if run["status"] in RAN_ITS_PLAN), None)
    return CycleState(last_result=last["status"] if last else None,
                      last_finished=unix_time(last.get("finished_at")) if last else None,
                      last_success=unix_time(success.get("finished_at")) if success else None)


def judge(status: Mapping[str, Any], cycles: CycleState, now: float) -> Health:
    """The verdict on ``status`` (``SyncService.get_sync_status``, with its live checks) and the cycles."""
    failed = int(status["operations"]["failed"])
    oldest = unix_time(status.get("oldest_failure_at"))
    held_deletes = (status.get("reconcile") or {}).get("held_deletes")
    held = int((held_deletes or {}).get("count") or 0)
    checks = {name: dict(check) for name, check in (status.get("checks") or {}).items()}
    age = None if oldest is None or not failed else round(max(0.0, now - oldest), 1)
    details: dict[str, Any] = {
        "initial_sync_completed": bool(status["initial_sync"]["completed"]),
        "last_result": cycles.last_result,
        "last_error": cycles.last_error,
        "last_finished": cycles.last_finished,
        "last_success": cycles.last_success,
        "overdue": cycles.overdue,
        "failed_operations": failed,
        "oldest_failure_age_s": age,
        "held_deletes": held_deletes,  # count, limit, the first paths; None: none
        "checks": checks,
    }
    down = [f"{name} unreachable: {check.get('error')}" for name, check in checks.items() if not check.get("ok")]
    if down:
        return Health(FAILING, "; ".join(down), details)
    if not details["initial_sync_completed"]:
        return Health(FAILING, "the initial sync has not completed yet", details)
    if cycles.overdue:
        return Health(FAILING, "no cycle has finished in time (2 x SYNC_INTERVAL + 60 s)", details)
    if cycles.last_result == "error":
        error = f": {cycles.last_error}" if cycles.last_error else ""
        return Health(FAILING, f"the last cycle ended in an error before it ran its plan{error}", details)
    if cycles.last_success is None:
        return Health(FAILING, "no cycle has run its plan yet", details)
    if failed:
        since = f", the oldest failing for {_age(age)}" if age is not None else ""
        return Health(DEGRADED, f"{failed} failed operation{'s' if failed != 1 else ''} (retried every "
                                f"cycle){since}; everything else is in sync", details)
    if held:
        return Health(DEGRADED, f"reconcile held {held} deletes back over the guard", details)
    return Health(OK, f"the last cycle ended {cycles.last_result}" if cycles.last_result else "ok", details)


def _age(seconds: float) -> str:
    whole = round(seconds)
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min"
    return f"{whole // 3600} h"


def unix_time(iso: Any) -> float | None:
    """An ISO-8601 time as the stores write it, as Unix time (None for none)."""
    if not iso:
        return None
    return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
