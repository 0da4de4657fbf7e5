"""Printing a plan for people: one operation a line, in the order it would run."""

from __future__ import annotations

from collections import Counter

from sync_service.models.data_models import FileOperation


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
