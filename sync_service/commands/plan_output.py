"""Printing a plan: for people, one operation a line, in the order it would run; for
programs, one JSON object a line."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sync_service.models.data_models import FileOperation
from sync_service.planning.planners import PlanEntry


def entry_label(entry: PlanEntry) -> str:
    """What a dry run's entry does, in words: the operation, or ``skip`` and its reason."""
    return f"skip {entry.reason}" if entry.action == "skip" else entry.action


def entry_text(entry: PlanEntry) -> str:
    """A dry run's entry as one aligned line."""
    return f"{entry_label(entry):<19}{entry.path}"


def entry_json(entry: PlanEntry) -> str:
    """A dry run's entry as one JSON object: ``op``, ``path`` and, for an operation, ``size``,
    ``etag`` and ``permissions`` (null: read from the object when it is delivered), ``new_path``
    for a rename or move; for a skip, its ``reason``."""
    shown: dict[str, Any] = {"op": entry.action, "path": entry.path}
    operation = entry.operation
    if operation is not None:
        if operation.new_path:
            shown.update(path=operation.path, new_path=operation.new_path)
        shown.update(size=operation.size, etag=operation.etag,
                     permissions=json.loads(operation.permissions) if operation.permissions else None)
    else:
        shown["reason"] = entry.reason
    return json.dumps(shown, ensure_ascii=False)


def render_plan(plan: list[FileOperation]) -> str:
    """The plan as aligned lines, then a count by kind."""
    lines = []
    for operation in plan:
        step = " (temporary step)" if operation.temp else ""
        if operation.op in ("rename", "move"):
            lines.append(f"{operation.op:<19}{operation.path} -> {operation.new_path}{step}")
        elif operation.op in ("create", "update_permissions"):
            lines.append(f"{operation.op:<19}{operation.path}  {operation.permissions}")
        else:
            lines.append(f"{operation.op:<19}{operation.path}")
    counts = Counter(o.op for o in plan if not o.temp)
    summary = ", ".join(f"{counts[k]} {k}" for k in
                        ("delete", "rename", "move", "create", "update", "update_permissions")
                        if counts[k])
    lines.append(f"{sum(counts.values())} operations" + (f": {summary}" if summary else ""))
    return "\n".join(lines)
