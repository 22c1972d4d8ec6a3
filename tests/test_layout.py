"""The layout's promises: dependencies point one way (no import circle between modules, nor between the
children of any package), and the model package imports nothing above it.

The import graph is read from the source with ``ast``, counting imports inside functions and under
``TYPE_CHECKING``: an import that only dodges a circle at run time still says the module is in the wrong
room. ``python tests/test_layout.py`` prints the graph's figures.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import tomllib

from refiner_nas._checkout import package_dirs

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "refiner_nas"


def modules() -> dict[str, Path]:
    """Every module of the distribution by its import name (a package by its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for package, folder in package_dirs(ROOT).items():
        for file in folder.rglob("*.py"):
            parts = file.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if all((folder.joinpath(*parts[:i]) / "__init__.py").exists() for i in range(len(parts))):
                found[".".join((package, *parts))] = file
    return found


def _imported_names(module: str, file: Path) -> Iterator[str]:
    is_package = file.name == "__init__.py"
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, with the ``__init__`` of every package it enters from
    outside (importing ``a.b.c`` from outside ``a.b`` runs ``a.b``'s ``__init__`` first). A module that
    imports its own package's ``__init__`` is counted too: that ``__init__`` imports it back."""
    found = modules()
    graph: dict[str, set[str]] = {name: set() for name in found}
    for module, file in found.items():
        for name in _imported_names(module, file):
            while name and name not in found:
                name = name.rpartition(".")[0]
            if not name.startswith(NAMESPACE):
                continue
            if name != module:  # what the statement names, even its own package's __init__
                graph[module].add(name)
            parts = name.split(".")
            for depth in range(2, len(parts)):  # the packages entered on the way, from outside only
                target = ".".join(parts[:depth])
                if target in found and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def children_graph(graph: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    """Arrows between the direct children (modules and subpackages) of ``package``."""
    depth = len(package.split(".")) + 1

    def child(module: str) -> str | None:
        if not module.startswith(package + "."):
            return None
        return ".".join(module.split(".")[:depth])

    arrows: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        source = child(module)
        for target in targets:
            destination = child(target)
            if source and destination and source != destination:
                arrows[source].add(destination)
    return arrows


def packages(graph: dict[str, set[str]]) -> list[str]:
    return sorted(name for name, file in modules().items() if file.name == "__init__.py")


def test_no_import_circle_between_modules() -> None:
    assert circles(import_graph()) == []


def test_no_import_circle_between_the_children_of_any_package() -> None:
    graph = import_graph()
    found = {package: circles(children_graph(graph, package)) for package in packages(graph)}
    assert {package: c for package, c in found.items() if c} == {}


def test_the_model_package_imports_nothing_above_it() -> None:
    graph = import_graph()
    model = f"{NAMESPACE}.refiner_space"
    outside = {(m, t) for m, targets in graph.items() if m.startswith(model) for t in targets
               if not t.startswith(model) and t != NAMESPACE}
    assert outside == set()


def test_the_search_imports_neither_results_nor_benchmarks() -> None:
    graph = import_graph()
    search = f"{NAMESPACE}.search"
    above = (f"{NAMESPACE}.results", f"{NAMESPACE}.benchmarks", f"{NAMESPACE}.cli", f"{NAMESPACE}.api")
    wrong = {(m, t) for m, targets in graph.items() if m.startswith(search) for t in targets if t.startswith(above)}
    assert wrong == set()


# The search's rooms from the bottom up, as search/__init__.py lists them: a room imports only rooms before it.
SEARCH_ROOMS = ("objectives", "records", "pareto", "provenance", "periodic", "settings", "space", "strategy",
                "storages", "tabular", "stoppers", "evaluation", "samplers", "study", "trial", "runner")


def test_the_search_rooms_import_only_the_rooms_below_them() -> None:
    arrows = children_graph(import_graph(), f"{NAMESPACE}.search")
    rank = {f"{NAMESPACE}.search.{room}": index for index, room in enumerate(SEARCH_ROOMS)}
    assert set(arrows) | {t for targets in arrows.values() for t in targets} <= set(rank)
    upward = {(source, target) for source, targets in arrows.items() for target in targets
              if rank[target] >= rank[source]}
    assert upward == set()


def test_the_graph_sees_a_circle_through_a_package_init(tmp_path) -> None:
    """The check is not vacuous: a module importing a sibling package's submodule enters that package's
    ``__init__``, and a circle through it is found."""
    graph = {"n.a": {"n.b"}, "n.b": {"n.b._impl"}, "n.b._impl": {"n.a"}}
    assert circles(graph) == [["n.a", "n.b", "n.b._impl"]]
    assert circles(children_graph(graph, "n")) == [["n.a", "n.b"]]


def test_every_package_folder_is_installed() -> None:
    """``pyproject.toml`` lists its packages explicitly (the mapping needs it): a new folder with an
    ``__init__.py`` that is not listed would be left out of the wheel. Its data folders (spaces,
    baselines) are listed too, as setuptools asks of folders Python could import."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    data = {package for package in listed if not any(folder_of(package).glob("*.py"))}
    assert {"refiner_nas.search.spaces", "refiner_nas.results.baselines"} <= data
    assert all(any(folder_of(package).glob("*.yaml")) or any(folder_of(package).glob("*.json")) for package in data)
    assert set(packages(import_graph())) == listed - data


def folder_of(package: str) -> Path:
    """The checkout folder of ``package`` under pyproject's package-dir mapping."""
    mapped = package_dirs(ROOT)
    parent = max((name for name in mapped if package == name or package.startswith(f"{name}.")), key=len)
    return mapped[parent].joinpath(*package.removeprefix(parent).split(".")[1:])


if __name__ == "__main__":
    graph = import_graph()
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} import arrows, "
          f"{len(circles(graph))} circles between modules")
    for package in packages(graph):
        arrows = children_graph(graph, package)
        print(f"{package}: {sum(map(len, arrows.values()))} arrows between its children, "
              f"{len(circles(arrows))} circles")
