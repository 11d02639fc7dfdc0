"""No import cycles in archsearch: neither between its modules nor between its subpackages.

What counts: every ``import`` or ``from ... import`` statement in ``archsearch/`` that names an
archsearch module, wherever it stands: module level, class bodies and function bodies alike. An
import inside a function defers loading (torch, Ray, a slow start-up); it does not make a
reversed layer acceptable, so a lazy import that closes a cycle fails too. Not counted: imports
under ``if TYPE_CHECKING:`` (never executed: annotations only), and modules named by a string
to ``importlib`` (the plug-in seams: a family spec names its torch module, the package root its
lazy public API).

A subpackage is ``archsearch.<name>``: a package (``costs``, ``search``) or a top-level module
(``config``, ``profiles``); the package root itself is left out. ``python
tests/test_import_cycles.py`` prints every cycle with the import lines that close it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # file:line of the import statement


def modules(root: Path, package: str = "archsearch") -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``package`` under ``root``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _statements(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``body``, nested ones included, except TYPE_CHECKING blocks."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _statements(node.orelse)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _statements([child])
                elif isinstance(child, ast.excepthandler):
                    yield from _statements(child.body)


def import_edges(root: Path, package: str = "archsearch") -> list[Edge]:
    """Module -> module edges, one per imported name that resolves to a module of ``package``."""
    known = modules(root, package)
    edges = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in _statements(ast.parse(path.read_text(), str(path)).body):
            where = f"{path.relative_to(root)}:{node.lineno}"
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the package this module lives in
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                # ``from pkg import mod`` imports the module pkg.mod; ``from pkg import f`` pkg.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            for target in dict.fromkeys(targets):
                if target in known and target != name:
                    edges.append(Edge(name, target, where))
    return edges


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else None


def cycles(edges: list[Edge], node_of=lambda module: module) -> list[list[Edge]]:
    """For each strongly connected component of more than one node (``node_of`` maps a module
    to its node), the edges inside it."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        a, b = node_of(edge.source), node_of(edge.target)
        if a is not None and b is not None and a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in sorted(graph[node]):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return [
        [
            e
            for e in edges
            if node_of(e.source) in component
            and node_of(e.target) in component
            and node_of(e.source) != node_of(e.target)
        ]
        for component in components
    ]


def describe(found: list[list[Edge]]) -> str:
    lines = []
    for component in found:
        lines.append("cycle among " + ", ".join(sorted({e.source for e in component})) + ":")
        lines += [f"  {e.where}: {e.source} imports {e.target}" for e in component]
    return "\n".join(lines)


def test_no_cycle_between_modules():
    found = cycles(import_edges(ROOT))
    assert not found, "import cycles between modules (break them; see the docstring):\n" + (
        describe(found)
    )


def test_no_cycle_between_subpackages():
    found = cycles(import_edges(ROOT), subpackage)
    assert not found, (
        "import cycles between subpackages (move the shared piece down a layer):\n"
        + describe(found)
    )


def test_the_check_finds_lazy_cycles_and_skips_type_checking_blocks(tmp_path):
    """The checker itself, on a package of its own: a cycle closed by an import inside a
    function is found, relative imports resolve, and a TYPE_CHECKING import is not an edge."""
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    (package / "high").mkdir()
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("")
    (package / "high" / "__init__.py").write_text("")
    (package / "low" / "base.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.high.top import Top\n"
        "def f():\n    from ..high import top\n    return top\n"
    )
    (package / "high" / "top.py").write_text("from pkg.low.base import f\n")
    (package / "high" / "side.py").write_text("from pkg.low import base\n")
    edges = import_edges(tmp_path, "pkg")
    pairs = {(e.source, e.target) for e in edges}
    assert pairs == {
        ("pkg.low.base", "pkg.high.top"),  # the lazy, relative one; the TYPE_CHECKING one not
        ("pkg.high.top", "pkg.low.base"),
        ("pkg.high.side", "pkg.low.base"),
    }
    assert [sorted({e.source for e in c}) for c in cycles(edges)] == [
        ["pkg.high.top", "pkg.low.base"]
    ]
    by_package = cycles(edges, subpackage)
    assert len(by_package) == 1
    assert {e.where for e in by_package[0]} == {
        "pkg/low/base.py:5",
        "pkg/high/top.py:1",
        "pkg/high/side.py:1",
    }


if __name__ == "__main__":
    edges = import_edges(ROOT)
    print(describe(cycles(edges)) or "no cycles between modules")
    print(describe(cycles(edges, subpackage)) or "no cycles between subpackages")
