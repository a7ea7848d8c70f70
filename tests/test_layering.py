"""The house: first-level packages form a DAG in a declared order, no module imports in a cycle
(imports inside functions count), package ``__init__`` files are empty or lazy, and modules stay small.

Read as: each row may import only from the rows below it (or from its own package).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "wanflow"

# Top to bottom. Entries of one row do not import each other.
LAYERS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"sim"},
    {"report"},
    {"_api"},
    {"execute", "report"},
    {"planning"},
    {"records"},
    {"providers"},
    {"state"},
    {"pipelines"},
    {"project"},
    {"ops"},
    {"media", "preview"},
    {"catalog"},
    {"artifacts", "_fs", "_confine", "_bounded", "_settings"},
    {"_fs_errors"},
    {"_exceptions"},
    {"_diagnostics", "_version"},
]
RANK = {name: index for index, row in enumerate(LAYERS) for name in row}
MAX_LINES = 430  # "about 400"


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The wanflow modules ``name`` imports anywhere in its body (resolved to modules)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts) + (f".{node.module}" if node.module else "")
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target.startswith("wanflow") and target != name:
                found.add(target)
    return found


EDGES = {name: _imports(name, path) for name, path in MODULES.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "wanflow"


def test_every_first_level_package_has_a_layer():
    packages = {_package(name) for name in MODULES} - {"wanflow"}
    assert packages == set(RANK), f"add {sorted(packages - set(RANK))} to LAYERS (or remove {sorted(set(RANK) - packages)})"


def test_no_package_imports_one_above_it_or_beside_it():
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in EDGES.items() for target in targets
        if _package(name) != "wanflow" and _package(target) not in ("wanflow", _package(name))
        and RANK[_package(target)] <= RANK[_package(name)]
    )
    assert upward == []


def test_only_the_package_root_re_exports_and_nothing_imports_it():
    importers = sorted(name for name, targets in EDGES.items() if "wanflow" in targets and name != "wanflow")
    assert importers == []


def test_no_module_imports_in_a_cycle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in EDGES[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("name", sorted(name for name, path in MODULES.items() if path.name == "__init__.py"))
def test_package_inits_are_empty_or_lazy(name):
    """An ``__init__`` may hold a docstring, and (the root and pipelines) a lazy ``__getattr__`` table:
    importing a leaf module must not run the engine."""
    tree = ast.parse(MODULES[name].read_text("utf-8"))
    eager = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
             and not (isinstance(node, ast.ImportFrom) and node.module in ("__future__", "typing", "wanflow._version"))
             and not (isinstance(node, ast.Import) and [alias.name for alias in node.names] == ["importlib"])]
    assert eager == [], f"{name}: eager imports {[ast.unparse(node) for node in eager]}"


def test_modules_stay_small():
    big = {name: count for name, path in MODULES.items() if (count := len(path.read_text("utf-8").splitlines())) > MAX_LINES}
    assert big == {}


def test_dependencies_reverse_nowhere_between_subpackages_of_execute():
    """The cluster knows the local engine; the local engine never imports the cluster eagerly."""
    eager_cluster = [name for name in ("wanflow.execute.batch", "wanflow.execute.instance", "wanflow.execute.limits")
                     if any(target.startswith("wanflow.execute.cluster") for target in EDGES[name])]
    assert eager_cluster == []
