"""One fake-hardware seam: only simulator/seam.py puts firmware/ or the fakes (simulator/hal)
on sys.path. Everything else that needs them calls simulator.install() (CPython), or builds a
MicroPython process's MICROPYPATH with simulator.micropython_path()."""

import ast
import itertools
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from source_tree import parse_file, parse_source  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEAM = os.path.join("simulator", "seam.py")
NOT_OURS = {".git", ".venv", "build", "node_modules", "typings", "vendor"}


FOLDERS = {os.path.join(ROOT, "firmware"), os.path.join(ROOT, "simulator", "hal")}


def _strings(node):
    return [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)
            and isinstance(c.value, str)]


def _plain(expr):
    """Only names, strings, `+` and os.path calls: safe to evaluate."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Call) and not ast.unparse(node.func).startswith("os.path."):
            return False
        if not isinstance(node, (ast.Call, ast.Attribute, ast.Name, ast.Constant, ast.BinOp,
                                 ast.Add, ast.Load)):
            return False
    return True


def _evaluate(expr, env):
    """Every value the expression can have, given the candidates of each name in `env`."""
    names = sorted({n.id for n in ast.walk(expr) if isinstance(n, ast.Name) and n.id in env})
    code = compile(ast.Expression(expr), "<path>", "eval")
    values = []
    for combo in itertools.islice(itertools.product(*(env[n] for n in names)), 64):
        try:
            values.append(eval(code, {"__builtins__": {}, "os": os}, dict(zip(names, combo))))
        except Exception:  # a name only known at run time
            pass
    return values


def _folders(tree, path):
    """name -> its possible values, for the plain path expressions the file assigns (or loops
    over), in source order."""
    env = {"__file__": [os.path.join(ROOT, path)]}
    steps = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            steps.append((node.lineno, node.targets[0].id, [node.value]))
        elif (isinstance(node, ast.For) and isinstance(node.target, ast.Name)
              and isinstance(node.iter, (ast.Tuple, ast.List))):
            steps.append((node.lineno, node.target.id, node.iter.elts))
    for _, name, exprs in sorted(steps, key=lambda step: step[0]):
        values = [v for e in exprs if _plain(e) for v in _evaluate(e, env) if isinstance(v, str)]
        if values:
            env[name] = values
    return env


def _names_a_seam_folder(expr, env):
    """firmware/ itself or simulator/hal (tests/firmware, the firmware tests' helpers, is not)."""
    values = _evaluate(expr, env) if _plain(expr) else []
    if values:
        return any(os.path.normpath(v) in FOLDERS for v in values if isinstance(v, str))
    segments = [s for part in _strings(expr) for s in part.replace("\\", "/").split("/") if s]
    if "hal" in segments:
        return True
    return bool(segments) and segments[-1] == "firmware" and "tests" not in segments


def _is_sys_path(node):
    return (isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys")


def _added_to_sys_path(node):
    """The expressions `node` puts on sys.path: insert/append/extend, or sys.path[...] = [...]."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
            and node.func.attr in ("insert", "append", "extend") and _is_sys_path(node.func.value)):
        return [node.args[-1]]
    if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)) and any(
            _is_sys_path(t.value if isinstance(t, ast.Subscript) else t) for t in node.targets):
        return node.value.elts
    return []


def seam_path_changes(tree, path="x.py"):
    """Line numbers where `tree` (the file at `path`) puts firmware/ or simulator/hal on
    sys.path."""
    env = _folders(tree, path)
    return sorted(node.lineno for node in ast.walk(tree)
                  if any(_names_a_seam_folder(e, env) for e in _added_to_sys_path(node)))


def _python_files():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in NOT_OURS)
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, name), ROOT)


def test_the_check_finds_a_seam_folder_put_on_sys_path():
    source = (
        "import os, sys\n"
        "FW = os.path.join(os.path.dirname(__file__), 'firmware')\n"
        "sys.path.insert(0, FW)\n"
        "def f(root):\n"
        "    sys.path.insert(0, os.path.join(root, 'simulator', 'hal'))\n"
        "    sys.path.append(root + '/firmware')\n"
        "    sys.path.insert(0, os.path.join(root, 'tests', 'firmware'))\n"
        "    sys.path.insert(0, os.path.join(root, 'tools'))\n"
        "sys.path[:0] = [os.path.join(os.path.dirname(__file__), 'simulator', 'hal')]\n"
        "for sub in ('tools', 'firmware'):\n"
        "    folder = os.path.join(os.path.dirname(__file__), sub)\n"
        "    sys.path.insert(0, folder)\n")
    assert seam_path_changes(parse_source(source), os.path.join("tests", "x.py")) == [5, 6]
    assert seam_path_changes(parse_source(source), "x.py") == [3, 5, 6, 9, 12]


def test_only_the_seam_puts_the_firmware_or_the_fakes_on_sys_path():
    found = ["%s:%d" % (path, line) for path in _python_files() if path != SEAM
             for line in seam_path_changes(parse_file(os.path.join(ROOT, path)), path)]
    assert found == [], "call simulator.install() instead: " + ", ".join(found)
    assert seam_path_changes(parse_file(os.path.join(ROOT, SEAM)), SEAM)  # the one place
    import simulator
    simulator.install()
    assert FOLDERS <= {os.path.normpath(p) for p in sys.path}
