"""The import graph between the top-level parts of a package, and a check that it has no loop.

The parts of a package are its top-level folders (subpackages) and top-level modules (`config.py`, `main.py`).
An arrow from one part to another is any import, at any depth of the source (inside functions too), of the
other part or of something in it. A loop between parts means neither can be read, tested or moved without the
other; a test suite calls `assert_no_import_cycles("<package>")` to keep its package free of them.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path


def package_root(package: str) -> Path:
    """The folder of an importable package (without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not an importable package")
    return Path(next(iter(spec.submodule_search_locations)))


def _modules(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        yield relative.parts[0].removesuffix(".py"), path


def _imported(tree: ast.AST, package: str, module: str) -> Iterator[str]:
    prefix = package + "."
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            # `from package import part` names the part itself.
            names = [f"{base}.{alias.name}" for alias in node.names] if base == package else [base]
        else:
            continue
        for name in names:
            if name.startswith(prefix):
                yield name.removeprefix(prefix).split(".", 1)[0]


def third_party_imports(package: str) -> set[str]:
    """The top-level names `package` imports, at any depth of its source, that are neither its own nor the
    standard library's."""
    found: set[str] = set()
    for _, path in _modules(package_root(package)):
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".", 1)[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".", 1)[0])
    return found - set(sys.stdlib_module_names) - {package, "__future__"}


def _parse(path: Path) -> ast.AST:
    source = path.read_text(encoding="utf-8")
    for _ in range(2):
        try:
            return ast.parse(source, filename=str(path))
        except SystemError:
            # CPython 3.11 before 3.11.8 keeps the AST validator's recursion depth in state shared by threads
            # (gh-106905): a parse racing one in another thread of the test process fails spuriously.
            continue
    return ast.parse(source, filename=str(path))


def import_graph(package: str) -> dict[str, set[str]]:
    """For each top-level part of `package`, the other parts it imports."""
    root = package_root(package)
    graph: dict[str, set[str]] = {}
    for part, path in _modules(root):
        dotted = ".".join([package, *path.relative_to(root).with_suffix("").parts])
        if path.name == "__init__.py":
            dotted = dotted.removesuffix(".__init__") + ".__init__"
        tree = _parse(path)
        edges = graph.setdefault(part, set())
        edges.update(other for other in _imported(tree, package, dotted) if other != part)
    for targets in list(graph.values()):
        for target in targets:
            graph.setdefault(target, set())
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One loop of `graph` as a path that starts and ends at the same part, or None when there is none."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph.get(node, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                found = visit(target)
                if found:
                    return found
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            found = visit(start)
            if found:
                return found
    return None


def assert_no_import_cycles(package: str) -> None:
    """Fail with the loop found when the top-level parts of `package` import each other in a loop."""
    cycle = find_cycle(import_graph(package))
    assert cycle is None, f"the parts of {package} import each other in a loop: {' -> '.join(cycle or [])}"
