"""The packages' import graphs have no cycle: data flows one way (sources -> calibration -> modes -> converter ->
verify -> pipeline; analysis and ship read artifacts; the device package underneath).

Every import counts, including those inside functions (a lazy import is still a dependency). Read with `ast`,
so nothing is imported here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"tfedge": ROOT / "tfedge", "tfedge_device": ROOT / "device" / "tfedge_device"}


def modules(package: str) -> dict[str, Path]:
    base = PACKAGES[package]
    found = {}
    for path in base.rglob("*.py"):
        parts = [package, *path.relative_to(base).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of `known` that module `name` imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets.add(module)
            targets.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import graph`
    return {target for target in targets if target in known and target != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    found = modules(package)
    return {name: imported(name, path, set(found)) for name, path in found.items()}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycle(package):
    graph = import_graph(package)
    assert len(graph) > 10, graph  # the walk found the package
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lazy_and_relative_imports_are_edges(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from . import b\n")
    (package / "b.py").write_text("from .a import f\n")
    known = {"pkg", "pkg.a", "pkg.b"}
    assert imported("pkg.a", package / "a.py", known) == {"pkg", "pkg.b"}
    assert imported("pkg.b", package / "b.py", known) == {"pkg.a"}


def test_the_host_never_flows_back_into_the_device_package():
    for name, path in modules("tfedge_device").items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert not (node.module or "").startswith("tfedge."), (name, node.module)
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith(("tfedge.", "tensorflow")) for alias in node.names), name


def test_plugin_mode_aliases_are_known_without_importing_them():
    from tfedge.convert.registry import PLUGIN_ALIASES, PLUGINS

    for name, load in PLUGINS.items():
        mode = load()
        assert mode.name == name
        assert {alias for alias, target in PLUGIN_ALIASES.items() if target == name} == set(mode.aliases)
