"""Arrows point down: no module of ``sync_service`` imports a layer above its own.

The layers, bottom to top, follow the flow of the data (see README, "Layout"): the plain
parts (errors, helpers, data), then the IO at the edges (clients, the store), then the stages
of the pipeline (planning, the sources of change that plan as they go, the execution), the
runs that compose them, and last the faces (web, commands, main). Two layers on one floor are
neighbours that must not import each other either: each stands on the floors below alone.

Every import counts: at the top of a module, inside a function, and under ``TYPE_CHECKING``
(a type named from above is still knowledge of the floor above, and it is what turns into a
runtime import the day someone needs the class).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sync_service"

#: The floors, bottom first; each names the top-level modules and folders of the package on it.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "version"),
    ("utils",),
    ("models",),
    ("clients", "store"),
    ("planning",),
    ("sources", "execution"),
    ("runs",),
    ("web",),
    ("commands",),
    ("main", "healthcheck"),
)

#: Arrows known to point up, each to be removed by the change that ends it: (file, layer it
#: imports). None now; one added here fails the test below once its import is gone.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class BadArrow:
    """One import of a module on a floor above, or beside, the importer's."""

    path: str
    line: int
    target: str
    source_layer: str
    target_layer: str

    def __str__(self) -> str:
        source_floor, target_floor = floor_of(self.source_layer), floor_of(self.target_layer)
        way = "up" if target_floor > source_floor else "sideways"
        return (f"{self.path}:{self.line} imports {self.target}: {self.source_layer} (floor "
                f"{source_floor}) -> {self.target_layer} (floor {target_floor}), {way}")


def floor_of(layer: str) -> int:
    """The floor of a layer, 0 at the bottom; a KeyError names a layer placed on none."""
    for number, layers in enumerate(FLOORS):
        if layer in layers:
            return number
    raise KeyError(f"{PACKAGE}/{layer} stands on no floor: add it to FLOORS in {Path(__file__).name}")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name inside the package (None outside it)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else None


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module an AST imports, with its line, wherever the import stands."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importer's package
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base == PACKAGE:  # ``from sync_service import store``: each name is the module
                found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, base))
    return found


def bad_arrows(root: Path) -> list[BadArrow]:
    """The imports under ``root/sync_service`` that point to a higher floor or a neighbour."""
    found = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        relative = path.relative_to(root)
        module = ".".join(relative.with_suffix("").parts)
        is_package = path.name == "__init__.py"
        if is_package:
            module = module.rsplit(".", 1)[0]
        source_layer = layer_of(module)
        if source_layer is None:  # the package's own __init__
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in imported_modules(tree, module, is_package):
            target_layer = layer_of(target)
            if target_layer is None or target_layer == source_layer:
                continue
            if floor_of(target_layer) >= floor_of(source_layer):
                found.append(BadArrow(relative.as_posix(), line, target, source_layer, target_layer))
    return found


def test_no_module_imports_a_layer_above_or_beside_its_own() -> None:
    arrows = [arrow for arrow in bad_arrows(REPO_ROOT)
              if (arrow.path, arrow.target_layer) not in KNOWN_EXCEPTIONS]
    assert not arrows, "imports against the layers:\n" + "\n".join(map(str, arrows))


def test_every_known_exception_is_still_needed() -> None:
    # An exception whose import is gone must go too, or it would hide the next one.
    needed = {(arrow.path, arrow.target_layer) for arrow in bad_arrows(REPO_ROOT)}
    stale = sorted(KNOWN_EXCEPTIONS - needed)
    assert not stale, f"remove from KNOWN_EXCEPTIONS, the import is gone: {stale}"


def test_every_part_of_the_package_stands_on_a_floor() -> None:
    for path in (REPO_ROOT / PACKAGE).iterdir():
        if path.name.startswith(("_", ".")) or (path.is_file() and path.suffix != ".py"):
            continue
        if path.is_dir() and not any(path.rglob("*.py")):  # a folder of bytecode left by a move
            continue
        floor_of(path.stem if path.is_file() else path.name)


def test_the_mock_never_imports_the_service() -> None:
    # The mock stands for a system we do not own: it cannot know the client's code.
    arrows = []
    for path in sorted((REPO_ROOT / "mock_api").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        arrows += [f"{path.relative_to(REPO_ROOT)}:{line} imports {target}"
                   for line, target in imported_modules(tree, module, path.name == "__init__.py")
                   if target.split(".")[0] == PACKAGE]
    assert not arrows, "\n".join(arrows)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_checker_reports_an_upward_import_with_its_file_line_and_floors(tmp_path: Path) -> None:
    # Given a small package whose client reaches up into the runs from inside a function, and
    # whose store imports the planning under TYPE_CHECKING, beside arrows that point down
    _write(tmp_path, "sync_service/__init__.py", "")
    _write(tmp_path, "sync_service/errors.py", "class SyncError(Exception):\n    pass\n")
    _write(tmp_path, "sync_service/clients/__init__.py", "")
    _write(tmp_path, "sync_service/clients/feed.py",
           "from sync_service.errors import SyncError\n"
           "\n"
           "\n"
           "def parse() -> None:\n"
           "    from sync_service.runs.daemon import Daemon\n")
    _write(tmp_path, "sync_service/store/__init__.py", "")
    _write(tmp_path, "sync_service/store/records.py",
           "from typing import TYPE_CHECKING\n"
           "if TYPE_CHECKING:\n"
           "    from ..planning import planners\n")
    _write(tmp_path, "sync_service/runs/__init__.py", "")
    _write(tmp_path, "sync_service/runs/daemon.py",
           "from sync_service.clients.feed import parse\nfrom . import other\n")

    # When the checker walks it
    arrows = bad_arrows(tmp_path)

    # Then both arrows up are reported, with file, line and both floors, and nothing else
    assert [str(arrow) for arrow in arrows] == [
        "sync_service/clients/feed.py:5 imports sync_service.runs.daemon: clients (floor 3) -> runs "
        "(floor 6), up",
        "sync_service/store/records.py:3 imports sync_service.planning: store (floor 3) -> planning "
        "(floor 4), up",
    ]


def test_the_checker_reports_neighbours_importing_each_other(tmp_path: Path) -> None:
    # Given an executor that imports a lister: both stages stand on one floor
    _write(tmp_path, "sync_service/execution/executor.py",
           "import sync_service.sources.range_lister\n")

    # When the checker walks it, then the arrow sideways is named as such
    assert [str(arrow) for arrow in bad_arrows(tmp_path)] == [
        "sync_service/execution/executor.py:1 imports sync_service.sources.range_lister: execution "
        "(floor 5) -> sources (floor 5), sideways",
    ]
