"""The diff and the plan ordering, as pure functions: swaps, chains, cycles, and a property
test that applying plan(diff(old, new)) to old gives new without ever overwriting a file."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sync_service.models.data_models import FileOperation, FileRecord
from sync_service.planning.diff import diff_records
from sync_service.planning.plan_order import apply_to_paths, order_moves, plan_operations


def diff_states(old: list[FileRecord], new: list[FileRecord]) -> list[FileOperation]:
    return list(diff_records(sorted(old, key=lambda r: r.id), sorted(new, key=lambda r: r.id)))


def rec(record_id: int, path: str, version: int = 1, perms: str = "{}") -> FileRecord:
    return FileRecord(record_id, path, 1, f"e{version}", "2026-11-24T00:00:00Z", perms, version)


def test_diff_gives_each_kind_of_operation() -> None:
    old = [rec(1, "a.txt"), rec(2, "docs/b.txt"), rec(3, "c.txt"), rec(4, "d.txt"), rec(5, "e.txt")]
    new = [rec(1, "a2.txt"), rec(2, "archive/b.txt"), rec(3, "c.txt", version=2),
           rec(5, "e.txt", perms='{"read":["x"]}'), rec(6, "new.txt")]
    ops = {(o.op, o.record_id, o.path, o.new_path) for o in diff_states(old, new)}
    assert ops == {
        ("rename", 1, "a.txt", "a2.txt"), ("move", 2, "docs/b.txt", "archive/b.txt"),
        ("update", 3, "c.txt", ""), ("delete", 4, "d.txt", ""),
        ("update_permissions", 5, "e.txt", ""), ("create", 6, "new.txt", ""),
    }


def test_identical_states_give_nothing() -> None:
    state = [rec(1, "NA"), rec(2, "0012"), rec(3, "a,b.txt")]
    assert diff_states(state, state) == []


def test_swap_goes_through_a_temporary_path() -> None:
    plan = order_moves([FileOperation("rename", 1, "a", "b"), FileOperation("rename", 2, "b", "a")])
    assert [o.temp for o in plan] == [True, False, False]
    assert apply_to_paths({1: "a", 2: "b"}, plan) == {1: "b", 2: "a"}


def test_chain_moves_the_last_link_first() -> None:
    plan = order_moves([FileOperation("move", 1, "x/a", "y/b"), FileOperation("move", 2, "y/b", "z/c")])
    assert [(o.path, o.new_path) for o in plan] == [("y/b", "z/c"), ("x/a", "y/b")]
    assert not any(o.temp for o in plan)


def test_phases_run_deletes_moves_creates_then_permissions() -> None:
    ops = [FileOperation("update_permissions", 1, "p"), FileOperation("create", 2, "a"),
           FileOperation("rename", 3, "b", "a2"), FileOperation("delete", 4, "a")]
    assert [o.op for o in plan_operations(ops)] == ["delete", "rename", "create", "update_permissions"]


NAMES = st.sampled_from(["a", "b", "c", "d", "e", "NA", "0012", "x/a", "x/b", "y/a", "y/c", "z/d/e"])


@st.composite
def states(draw: st.DrawFn) -> tuple[list[FileRecord], list[FileRecord]]:
    old_paths = draw(st.lists(NAMES, unique=True, max_size=8))
    old = [rec(i + 1, p, draw(st.integers(1, 3)), draw(st.sampled_from(["{}", '{"r":1}'])))
           for i, p in enumerate(old_paths)]
    kept = draw(st.lists(st.sampled_from(old), unique_by=lambda r: r.id)) if old else []
    created = draw(st.integers(0, 3))
    new_paths = draw(st.lists(NAMES, unique=True, min_size=len(kept) + created,
                              max_size=len(kept) + created))
    new = [rec(r.id, new_paths[i], draw(st.integers(1, 3)), draw(st.sampled_from(["{}", '{"r":1}'])))
           for i, r in enumerate(kept)]
    new += [rec(100 + i, new_paths[len(kept) + i]) for i in range(created)]
    return old, new


def simulate(old: list[FileRecord], plan: list[FileOperation]) -> dict[int, tuple[str, int, str]]:
    state = {r.id: (r.path, r.content_version, r.permissions) for r in old}
    paths = apply_to_paths({r.id: r.path for r in old}, plan)  # raises on any overwrite
    for o in plan:
        if o.op == "delete":
            state.pop(o.record_id)
        elif o.op in ("create", "update"):
            perms = o.permissions if o.op == "create" else state[o.record_id][2]
            state[o.record_id] = (o.path, o.content_version, perms)
        elif o.op == "update_permissions":
            path, version, _ = state[o.record_id]
            state[o.record_id] = (path, version, o.permissions)
    return {i: (paths[i], version, perms) for i, (_, version, perms) in state.items()}


@settings(max_examples=300, deadline=None)
@given(states())
def test_applying_the_plan_to_old_gives_new(pair: tuple[list[FileRecord], list[FileRecord]]) -> None:
    old, new = pair
    plan = plan_operations(diff_states(old, new))
    assert simulate(old, plan) == {r.id: (r.path, r.content_version, r.permissions) for r in new}


def test_waves_keep_dependent_moves_apart_and_independent_ones_together() -> None:
    from sync_service.execution.executor import waves
    from sync_service.models.data_models import StoredOperation

    plan = order_moves([FileOperation("rename", 1, "a", "b"), FileOperation("rename", 2, "b", "a"),
                        FileOperation("move", 3, "x/c", "y/c"), FileOperation("move", 4, "x/d", "y/d"),
                        FileOperation("move", 5, "y/e", "x/c")])
    stored = [StoredOperation(n, f"r:{n}", o) for n, o in enumerate(plan)]
    cut = list(waves(stored))
    assert [s.operation for wave in cut for s in wave] == plan  # the order is kept
    for wave in cut:
        paths = [p for s in wave for p in (s.operation.path, s.operation.new_path)]
        assert len(paths) == len(set(paths))  # no two members of a wave share a path
    assert len(cut) < len(plan)  # independent moves do run together
