"""Test modules need unique basenames: pytest imports them by name (tests/ folders are not
packages, so the MicroPython runner can import firmware tests by plain name too)."""
import collections
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_test_module_basenames_are_unique():
    seen = collections.defaultdict(list)
    for top in ("tests", "hil"):
        for base, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.startswith("test_") and name.endswith(".py"):
                    seen[name].append(os.path.relpath(os.path.join(base, name), ROOT))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert clashes == {}
