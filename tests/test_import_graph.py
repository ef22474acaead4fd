"""cnnlib's import graph, read from the source: packages in dependency order, no loops, no
upward imports, project modules imported at the top of the file, and the public API's
top-level modules used by nobody inside the packages."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: cnnlib's packages from the bottom floor up (as the package docstring lists them).
FLOORS = ("core", "data", "conv", "models", "inspect", "training", "uploads")
#: Project imports inside functions, each with its reason. Keep this list short.
LAZY_ALLOWED: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (ROOT / "cnnlib").rglob("*.py")}


def _imports(path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """(imported project module, inside a function?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nested = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            nested.update(id(n) for n in ast.walk(node) if n is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" for a in node.names]
            targets = [t for t in targets if t in known] or [node.module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found += [(t, id(node) in nested) for t in targets if t in known]
    return found


def _floor(module: str) -> int:
    """The floor of a module: its package's index, or the top for ``cnnlib.<facade>``."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in FLOORS:
        return FLOORS.index(parts[1])
    return len(FLOORS)


@cache  # one read of the source for the whole module (each test only reads the graph)
def _graph() -> dict[str, list[tuple[str, bool]]]:
    modules = _modules()
    return {m: _imports(p, set(modules)) for m, p in modules.items()}


def test_every_package_is_on_a_floor():
    packages = {p.name for p in (ROOT / "cnnlib").iterdir() if (p / "__init__.py").exists()}
    assert packages == set(FLOORS)


def test_no_upward_imports():
    upward = [
        f"{m} → {t}"
        for m, targets in _graph().items()
        for t, _ in targets
        if _floor(t) > _floor(m) and m != "cnnlib"
    ]
    assert not upward, upward


def test_no_import_loops():
    graph = {m: {t for t, _ in targets if t != m} for m, targets in _graph().items()}
    # A package's __init__ importing its own modules is not a loop back into it.
    for m in graph:
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    loops, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                loops.append(" → ".join([*path[path.index(t) :], t]))
            elif t not in state:
                visit(t, [*path, t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not loops, loops


def test_project_modules_are_imported_at_the_top():
    lazy = {
        (m, t)
        for m, targets in _graph().items()
        for t, inside in targets
        if inside and (m, t) not in LAZY_ALLOWED
    }
    assert not lazy, sorted(lazy)


def test_the_public_modules_are_not_used_inside_the_packages():
    facades = {m for m in _modules() if m.count(".") == 1 and m.split(".")[1] not in FLOORS}
    users = [
        f"{m} → {t}"
        for m, targets in _graph().items()
        if _floor(m) < len(FLOORS)
        for t, _ in targets
        if t in facades
    ]
    assert facades >= {"cnnlib.images", "cnnlib.saliency", "cnnlib.visualize", "cnnlib.folders"}
    assert not users, users


def test_cnnlib_never_imports_streamlit_or_the_ui():
    for m, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in ("streamlit", "ui", "app_pages"), (m, name)
