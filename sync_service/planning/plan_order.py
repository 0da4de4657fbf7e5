"""Ordering a diff into a plan that never loses a file (SPEC §2).

Deletes first; then renames and moves, each one only once its target path is free, with
cycles (a swap A↔B, a ring A→B→C→A) broken by a step through a temporary path in the source's
folder; then creates and updates; then permission changes. Pure functions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from sync_service.models.data_models import PHASES, FileOperation
from sync_service.utils.paths import MAX_PATH_BYTES, move_kind, parent_folder

TEMP_MARK = ".sync-tmp-"


def temp_path(operation: FileOperation) -> str:
    """A temporary path in the source's folder, unique to the record."""
    folder = parent_folder(operation.path)
    name = operation.path.rsplit("/", 1)[-1]
    candidate = f"{TEMP_MARK}{operation.record_id}-{name}"
    path = f"{folder}/{candidate}" if folder else candidate
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        path = f"{folder}/{TEMP_MARK}{operation.record_id}" if folder else f"{TEMP_MARK}{operation.record_id}"
    return path


def order_moves(moves: list[FileOperation]) -> list[FileOperation]:
    """Renames and moves in an order where no target is still occupied by a pending source."""
    pending = {m.path: m for m in moves}
    waiting_for = {m.new_path: m.path for m in moves}  # target -> the move that wants it
    ready = deque(src for src, m in pending.items() if m.new_path not in pending)
    ordered: list[FileOperation] = []

    def free(path: str) -> None:
        mover = waiting_for.get(path)
        if mover is not None and mover in pending:
            ready.append(mover)

    while pending:
        while ready:
            source = ready.popleft()
            move = pending.pop(source, None)
            if move is None:
                continue
            ordered.append(move)
            free(source)
        if pending:  # only cycles are left: park one member on a temporary path
            source, move = next(iter(pending.items()))
            parked = temp_path(move)
            ordered.append(replace(move, op="rename", new_path=parked, temp=True))
            del pending[source]
            resumed = replace(move, op=move_kind(parked, move.new_path), path=parked)
            pending[parked] = resumed
            waiting_for[move.new_path] = parked
            free(source)
            if resumed.new_path not in pending:
                ready.append(parked)
    return ordered


def plan_operations(operations: list[FileOperation]) -> list[FileOperation]:
    """The diff's operations in an order that cannot collide or lose a file."""
    by_phase: dict[int, list[FileOperation]] = {0: [], 1: [], 2: [], 3: []}
    for operation in operations:
        by_phase[PHASES[operation.op]].append(operation)
    return [*by_phase[0], *order_moves(by_phase[1]), *by_phase[2], *by_phase[3]]


def apply_to_paths(paths: dict[int, str], plan: list[FileOperation]) -> dict[int, str]:
    """Simulate a plan on ``{record id: path}``, raising if a step would overwrite a file.

    Used by tests to prove a plan is safe, and by ``diff`` to check what it prints.
    """
    state = dict(paths)
    occupied = {path: record_id for record_id, path in state.items()}
    for operation in plan:
        if operation.op == "delete":
            occupied.pop(state.pop(operation.record_id), None)
        elif operation.op in ("rename", "move"):
            if operation.new_path in occupied:
                raise ValueError(f"{operation.op} {operation.path!r} -> {operation.new_path!r} "
                                 "would overwrite another file")
            occupied.pop(state[operation.record_id])
            state[operation.record_id] = operation.new_path
            occupied[operation.new_path] = operation.record_id
        elif operation.op == "create":
            if operation.path in occupied:
                raise ValueError(f"create {operation.path!r} would overwrite another file")
            state[operation.record_id] = operation.path
            occupied[operation.path] = operation.record_id
    return state
