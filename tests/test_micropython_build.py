"""The 32-bit MicroPython built by tools/build_micropython.py (`make micropython`): a 32-bit
interpreter, and the firmware frozen into it imports with no firmware on the path, in 64 KB."""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FROZEN = os.path.join(ROOT, "build", "micropython", "micropython-frozen")
PLAIN = os.path.join(ROOT, "build", "micropython", "micropython-plain")

pytestmark = pytest.mark.skipif(
    not os.path.exists(FROZEN),
    reason="build/micropython/micropython-frozen not built: run `make micropython`")


def run(exe, code, heap="64k"):
    env = dict(os.environ)
    env.pop("MICROPYPATH", None)  # the default path: '', .frozen, ~/.micropython/lib
    # cwd is the repository root: firmware/ is not on '' there, so only the frozen copy imports.
    return subprocess.run([exe, "-X", "heapsize=" + heap, "-c", code], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("exe", [FROZEN, PLAIN], ids=["frozen", "plain"])
def test_the_build_is_32_bit_micropython_1_28(exe):
    proc = run(exe, "import sys; print(sys.maxsize); print(sys.implementation.version[:3])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["2147483647", "(1, 28, 0)"]


def test_the_frozen_image_imports_the_whole_firmware_in_64k():
    proc = run(FROZEN, "import gc; import meter.boot, meter.app, meter.link\n"
                       "print(meter.app.__file__); gc.collect(); print(gc.mem_alloc())")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where, live = proc.stdout.split()
    assert where == "meter/app.py"  # frozen modules are named by their path in the manifest
    assert int(live) < 32 * 1024  # about 12 KB today (docs/benchmarks.md); .mpy on 32-bit: 52 KB


def frozen_modules(exe):
    proc = run(exe, "help('modules')")
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_the_frozen_image_holds_the_manifest_and_nothing_from_micropython_lib():
    modules = frozen_modules(FROZEN)
    assert {"main", "meter/__init__", "meter/app", "meter/drivers/pzem004t",
            "asyncio/__init__"} <= modules
    assert "manifest" not in modules
    proc = run(FROZEN, "import asyncio\nasync def tick():\n    await asyncio.sleep_ms(1)\n"
                       "    return 'ok'\nprint(asyncio.run(tick()))")
    assert proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_the_plain_image_holds_no_firmware():
    proc = run(PLAIN, "import meter")
    assert proc.returncode != 0 and "ImportError" in proc.stdout + proc.stderr
