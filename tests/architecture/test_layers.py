"""The layout's rules, read from the modules' own imports (docs/architecture.md §1).

Every ``import context_cleaner...`` in src/ counts, wherever it stands (a lazy import
inside a function, or one under ``TYPE_CHECKING``, is still a dependency):

- imports point down the layers, never up, and never sideways between the packages
  of one floor (the dashboard, the orchestration and the testing API know nothing of
  each other);
- no two modules import each other, directly or round a circle.

(Module size: test_module_size.py; argparse only under cli/: tests/cli/test_settings.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "context_cleaner"

#: Floors, bottom up. A module may import its own floor's package and any floor below.
FLOORS: dict[str, int] = {
    "errors": 0,
    "version": 0,
    "_lazy": 0,
    "settings": 1,
    "observability": 2,
    "analysis": 3,
    "bridge": 4,
    "migration": 5,
    "orchestration": 6,
    "testing": 6,
    "dashboard": 6,
    "cli": 7,
    "api": 7,
    "__main__": 8,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (a package import counts as its ``__init__``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            # ``from context_cleaner.migration import pipeline`` imports the module;
            # ``from context_cleaner.bridge import Database`` the package's face
            targets.update(submodules or {base})
            if len(submodules) < len(node.names):
                targets.add(base)
    # a package's own face runs first whatever its modules import: no dependency
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {t for t in targets if t in MODULES and t != name and t not in ancestors}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _floor(module: str) -> tuple[str, int] | None:
    """The floor of a module; ``None`` for the package's face (it hands names on lazily)."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    return parts[1], FLOORS[parts[1]]


def test_every_package_has_a_floor() -> None:
    unknown = {m.split(".")[1] for m in MODULES if "." in m} - set(FLOORS)
    assert not unknown, f"give these packages a floor in FLOORS and docs/architecture.md: {unknown}"


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        here = _floor(module)
        if here is None:
            continue
        for target in targets:
            there = _floor(target)
            if there is None:
                continue  # the package face (context_cleaner/__init__.py): __version__
            if there[1] > here[1] or (there[1] == here[1] and there[0] != here[0]):
                wrong.append(f"{module} (floor {here[1]}) -> {target} (floor {there[1]})")
    assert not wrong, "imports that run up or sideways:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    # the face imports nothing eagerly; leave it out so "x imports context_cleaner" is no loop
    graph = {m: {t for t in ts if "." in t} for m, ts in GRAPH.items() if "." in m}
    assert not _cycles(graph)


def test_the_circle_finder_finds_circles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
