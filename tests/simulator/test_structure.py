"""The simulator package's modules import each other without a circle: the graph of their
imports of simulator.* modules (at module level and inside functions alike) is acyclic."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = "simulator"


def module_files(root=ROOT, package=PACKAGE):
    """{dotted module name: source path} for every .py under the package's folder."""
    found = {}
    for base, dirs, files in os.walk(os.path.join(root, package)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(base, name)
                parts = os.path.relpath(path, root)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                found[".".join(parts)] = path
    return found


def _known(name, modules):
    """The module `name` imports: itself, else its longest known parent."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name, path, modules, package=PACKAGE):
    """The package's modules that module `name` imports, anywhere in its source."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    is_pkg = os.path.basename(path) == "__init__.py"
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            wanted = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = name.split(".") if is_pkg else name.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join(here + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from simulator import board_context` imports the submodule, not the package.
            wanted = [base + "." + a.name if base + "." + a.name in modules else base
                      for a in node.names]
        else:
            continue
        for target in wanted:
            if target == package or target.startswith(package + "."):
                target = _known(target, modules)
                if target is not None and target != name:
                    targets.add(target)
    return targets


def import_graph(root=ROOT, package=PACKAGE):
    modules = module_files(root, package)
    return {name: imports_of(name, path, modules, package) for name, path in modules.items()}


def find_cycle(graph):
    """One import circle as [a, b, ..., a], or None."""
    state = {}  # 1: on the current path, 2: done
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_simulator_package_has_no_import_circle():
    graph = import_graph()
    # The graph is really built: the edges it is there to watch are in it.
    assert "simulator.scenario" in graph["simulator.fleet"]
    assert "simulator.meter" in graph["simulator.scenario"]  # inside a function
    assert "simulator.board_context" in graph["simulator.hal.machine"]  # from simulator import
    cycle = find_cycle(graph)
    assert cycle is None, "import circle in simulator/: " + " -> ".join(cycle)


def test_a_circle_is_found_and_named(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.sub.c import x\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import a\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    graph = import_graph(str(tmp_path), "pkg")
    assert graph["pkg.sub.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    (pkg / "sub" / "c.py").write_text("x = 1\n")
    assert find_cycle(import_graph(str(tmp_path), "pkg")) is None
