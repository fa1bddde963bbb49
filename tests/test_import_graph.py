"""No import circle in the Python packages: each module's imports (top-level and the ones
inside functions, which only hide a circle until the function runs) form a graph without a
cycle. A failure names the cycle."""

import ast
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from source_tree import parse_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("cloud", "standins", "simulator")


def _modules(package):
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return found


def _imported(path, module, known):
    tree = parse_file(path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package holding this module
                parts = module.split(".")
                if not path.endswith("__init__.py"):
                    parts = parts[:-1]
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            subs = {base + "." + alias.name for alias in node.names}
            names |= subs & set(known)  # `from pkg import submodule` needs the submodule
            if not subs <= set(known):
                names.add(base)  # a name defined in the module (or package __init__) itself
    return {name for name in names if name in known and name != module}


def import_graph(modules):
    return {module: _imported(path, module, modules) for module, path in modules.items()}


def find_cycle(graph):
    """One cycle as a list of modules (first == last), or None."""
    state = {}

    def visit(module, trail):
        state[module] = "open"
        trail.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state:
                cycle = visit(target, trail)
                if cycle:
                    return cycle
        trail.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [])
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_names_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package):
    cycle = find_cycle(import_graph(_modules(package)))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_import_circle_across_the_packages():
    modules = {}
    for package in PACKAGES:
        modules.update(_modules(package))
    cycle = find_cycle(import_graph(modules))
    assert cycle is None, "import circle: " + " -> ".join(cycle)
