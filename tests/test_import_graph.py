"""The packages' import graph: no cycle among their modules, lazy imports included, and the
policy's layers import no reward model.

The graph is read from the source with :mod:`ast` (nothing is imported): every ``import`` and
``from ... import`` statement anywhere in a module (at the top or inside functions: lazy imports
count) and every ``importlib.import_module("...")`` with a literal name is an edge to the package
module it names (``from pkg import name`` names ``pkg.name`` when that is a module, else
``pkg``'s ``__init__``). Imports under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("caasl_agent", "caasl_envs")


def package_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """``{dotted module name: file}`` of every ``.py`` file of ``packages`` under ``root``."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _executed_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)
    return nodes


def _imported_names(tree: ast.AST, package: str) -> list[str]:
    """Dotted names the module imports (``from a import b`` gives ``a.b``), relative imports
    resolved against ``package`` (the module's own package)."""
    names = []
    for node in _executed_nodes(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names += [f"{base}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append(node.args[0].value)
    return names


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """``{module: modules of the packages it imports}`` (self-imports left out)."""
    modules = package_modules(root, packages)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for imported in _imported_names(ast.parse(path.read_text()), package):
            while imported and imported not in modules:  # ``pkg.attr`` -> ``pkg``
                imported = imported.rpartition(".")[0]
            if imported:
                targets.add(imported)
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of ``graph``, or ``None`` when it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycle_among_the_packages_modules():
    graph = import_graph(ROOT, PACKAGES)
    assert len(graph) > 50 and "caasl_agent.bench.agents" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_planners_import_the_agent_protocol_not_the_runner():
    graph = import_graph(ROOT, PACKAGES)
    assert "caasl_agent.bench.agents" in graph["caasl_agent.bench.eig"]
    # the protocol reaches neither the harness nor the algorithm (which may use the baselines)
    assert not reachable(graph, "caasl_agent.bench.agents") & {
        "caasl_agent.bench.runner",
        "caasl_agent.bench.baselines",
        "caasl_agent.bench.eig",
        "caasl_agent.bench.loaders",
        "caasl_agent.caasl",
    }


def test_the_policy_layers_import_no_reward_model():
    graph = import_graph(ROOT, PACKAGES)
    for layers in ("caasl_agent.torch_layers", "caasl_agent.policies"):
        reward = sorted(m for m in reachable(graph, layers) if m.startswith("caasl_envs.reward"))
        assert not reward, f"{layers} imports {reward}"


def test_the_graph_sees_lazy_relative_and_dynamic_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg import a\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("import importlib\nimportlib.import_module('pkg.c')\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
    )
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.c"},
        "pkg.c": set(),
    }
    assert find_cycle(graph) is None
    (pkg / "c.py").write_text("if False:\n    from pkg.a import f\n")
    assert find_cycle(import_graph(tmp_path, ("pkg",))) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
