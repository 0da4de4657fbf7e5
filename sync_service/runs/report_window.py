"""A report window (SPEC §6): the event-driven cycles of one ``REPORT_INTERVAL`` as one run.

Each cycle counts into a report of its own and stores its operations under
``<run_id>.<n>``; the window adds the cycle's counts to its report, and at its close joins the
cycles' touched-record CSVs (each ordered by id) into one pair ordered by id, streamed: the
first old row and the last new row of each record. The lags from events to their operations'
success are kept as a bounded sample, so a flood keeps memory flat.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from sync_service.models.data_models import FileRecord, OperationFailure, RunReport
from sync_service.store.csv_processor import CSVProcessor
from sync_service.store.operations import Outcome

#: Lags kept for a window's quantiles; past that, a uniform sample of them.
LAG_SAMPLE_SIZE = 10_000


class LagSample:
    """A bounded uniform sample (reservoir) of lags, in seconds, with quantiles."""

    def __init__(self, size: int = LAG_SAMPLE_SIZE, rng: random.Random | None = None) -> None:
        self.size = size
        self.seen = 0
        self.highest = 0.0
        self.values: list[float] = []
        self._rng = rng or random.Random()

    def add(self, lag: float) -> None:
        """Keep one more lag (or let it replace one kept, with the reservoir's odds)."""
        self.seen += 1
        self.highest = max(self.highest, lag)
        if len(self.values) < self.size:
            self.values.append(lag)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.size:
            self.values[slot] = lag

    def summary(self) -> dict[str, float]:
        """count, p50, p99 and max (seconds), or nothing before the first lag."""
        if not self.values:
            return {}
        ordered = sorted(self.values)
        return {"count": self.seen, "p50": round(quantile(ordered, 0.50), 3),
                "p99": round(quantile(ordered, 0.99), 3), "max": round(self.highest, 3)}


def quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values (nearest rank)."""
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def event_lags(outcomes: Iterable[Outcome], touched: set[int], event_times: dict[int, str],
               arrived: datetime | None, now: datetime) -> Iterator[float]:
    """Seconds from each event to now, for the operations of a cycle that succeeded on the
    records its events ``touched``: from the time the event carried, else from its arrival
    (None: the cycle was not woken by events)."""
    for outcome in outcomes:
        if (outcome.status != "done" or outcome.operation.temp
                or outcome.operation.record_id not in touched):
            continue
        carried = event_times.get(outcome.operation.record_id)
        since = _parsed(carried) if carried else None
        if since is None:
            since = arrived
        if since is not None:
            yield max(0.0, (now - since).total_seconds())


def _parsed(moment: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass
class ReportWindow:
    """One open run of event-driven cycles."""

    report: RunReport
    opened: float  # monotonic
    lags: LagSample = field(default_factory=LagSample)

    def next_cycle_id(self) -> str:
        """The run id the next cycle stores its operations and CSVs under."""
        return cycle_id(self.report.run_id, self.report.cycles + 1)

    def add(self, cycle: RunReport) -> None:
        """Count a finished cycle's report in the window's."""
        add_counts(self.report, cycle)

    def left(self, interval_s: float, now: float) -> float:
        """Seconds until the window is due to close (0: due)."""
        return max(0.0, self.opened + interval_s - now)


def cycle_id(run_id: str, number: int) -> str:
    """``<run_id>.<number>``: a window's cycle."""
    return f"{run_id}.{number}"


def add_counts(total: RunReport, cycle: RunReport) -> None:
    """Add the counts, failures and phase times of one cycle to a window's report."""
    total.cycles += 1
    total.events_applied += cycle.events_applied
    total.events_rejected += cycle.events_rejected
    for reason, count in cycle.events_skipped.items():
        total.events_skipped[reason] = total.events_skipped.get(reason, 0) + count
    for kind, count in cycle.operations.items():
        total.operations[kind] = total.operations.get(kind, 0) + count
    total.succeeded += cycle.succeeded
    total.failed += cycle.failed
    for reason, count in cycle.skipped_reasons.items():
        total.skip(reason, count)
    total.bytes_transferred += cycle.bytes_transferred
    for phase, seconds in cycle.phase_seconds.items():
        total.phase_seconds[phase] = round(total.phase_seconds.get(phase, 0.0) + seconds, 3)
    total.failures.extend(cycle.failures)


def report_from_dict(stored: dict[str, Any]) -> RunReport:
    """A report as ``RunReport.to_dict`` stored it (a window's checkpoint)."""
    known = {f.name for f in fields(RunReport)}
    values = {k: v for k, v in stored.items() if k in known and k != "failures"}
    report = RunReport(**values)
    report.failures = [OperationFailure(**f) for f in stored.get("failures") or []]
    return report


def join_cycle_exports(export_dir: Path, run_id: str, cycles: int) -> list[Path]:
    """Join the cycles' ``<run_id>.<n>-old/-new/-plan.csv`` into ``<run_id>-old/-new/-plan.csv``
    (old: the first row of each record, new: the last; the plan: every cycle's, in order),
    then remove the cycles' files. Nothing is written when no cycle touched a record."""
    csv = CSVProcessor(export_dir)
    written = []
    for kind, keep_last in (("old", False), ("new", True)):
        parts = _parts(export_dir, run_id, cycles, kind)
        if parts:
            merged = heapq.merge(*(CSVProcessor.iter_records(p) for p in parts), key=lambda r: r.id)
            written.append(csv.export(_one_per_id(merged, keep_last), name=f"{run_id}-{kind}"))
    plans = _parts(export_dir, run_id, cycles, "plan")
    if plans:
        target = export_dir / f"{run_id}-plan.csv"
        partial = target.with_name(f".{target.name}.partial")
        with partial.open("w", encoding="utf-8", newline="") as out:
            for number, part in enumerate(plans):
                with part.open(encoding="utf-8", newline="") as handle:
                    header = handle.readline()
                    if number == 0:
                        out.write(header)
                    out.writelines(handle)
        partial.replace(target)
        written.append(target)
    for kind in ("old", "new", "plan"):
        for part in _parts(export_dir, run_id, cycles, kind):
            part.unlink(missing_ok=True)
    return written


def _parts(export_dir: Path, run_id: str, cycles: int, kind: str) -> list[Path]:
    found = (export_dir / f"{cycle_id(run_id, n)}-{kind}.csv" for n in range(1, cycles + 1))
    return [p for p in found if p.exists()]


def _one_per_id(rows: Iterable[FileRecord], keep_last: bool) -> Iterator[FileRecord]:
    # heapq.merge is stable: the rows of one id come in cycle order.
    for _, same in groupby(rows, key=lambda r: r.id):
        kept = deque(same, maxlen=None if not keep_last else 1)
        yield kept[-1] if keep_last else kept[0]
