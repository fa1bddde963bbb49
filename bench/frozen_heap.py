"""RAM the firmware's code costs: frozen into a 32-bit image, as .mpy on a 32-bit and a 64-bit port.

    python3 tools/build_micropython.py && .venv/bin/python tools/build_firmware.py --out build/firmware
    .venv/bin/python bench/frozen_heap.py             # meter.app and meter.boot, a few seconds
    .venv/bin/python bench/frozen_heap.py --module meter.app

For each interpreter and module: the live heap after the import and gc.collect(), under a 64 KB
cap (256 KB for the 64-bit port, which needs more than 64 KB for meter.boot), and the smallest
-X heapsize (bisected to 256 bytes) at which the import still succeeds. Each probe is its own
process, run from the repository root (no firmware on '' there); every command is printed.
"""
import argparse
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MP = os.path.join(ROOT, "build", "micropython")
MPY_LIB = os.path.join(ROOT, "build", "firmware", "lib")
SCRIPT = "import gc; import %s; gc.collect(); print(gc.mem_alloc())"
STEP = 256

# (label, binary, MICROPYPATH or None, heap cap for the live-heap figure)
RUNS = [
    ("frozen-32", os.path.join(MP, "micropython-frozen"), None, "64k"),
    ("mpy-32", os.path.join(MP, "micropython-plain"), MPY_LIB + ":.frozen", "64k"),
    ("mpy-64 (PyPI)", os.path.join(os.path.dirname(sys.executable), "micropython"),
     MPY_LIB + ":.frozen", "256k"),
]


def command(exe, path, heap, module):
    """The argv, and the same as a shell line relative to the repository root."""
    argv = [exe, "-X", "heapsize=%s" % heap, "-c", SCRIPT % module]
    shown = [shlex.quote(os.path.relpath(exe, ROOT))] + [shlex.quote(a) for a in argv[1:]]
    if path:
        rel = ":".join(os.path.relpath(p, ROOT) if p.startswith("/") else p
                       for p in path.split(":"))
        shown.insert(0, "MICROPYPATH=" + rel)
    return argv, " ".join(shown)


def run(exe, path, heap, module):
    env = dict(os.environ)
    env.pop("MICROPYPATH", None)
    if path:
        env["MICROPYPATH"] = path
    argv, _ = command(exe, path, heap, module)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    if proc.returncode != 0:
        return None
    try:
        return int(proc.stdout.split()[-1])
    except (ValueError, IndexError):
        return None


def smallest_heap(exe, path, module, good):
    """Smallest heapsize in bytes (multiple of STEP) at which the import succeeds."""
    bad = STEP
    while good - bad > STEP:
        mid = (good + bad) // 2 // STEP * STEP
        if run(exe, path, mid, module) is None:
            bad = mid
        else:
            good = mid
    return good


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="default: meter.app and meter.boot")
    args = parser.parse_args()
    modules = args.module or ["meter.app", "meter.boot"]
    for _, exe, path, _ in RUNS:
        if not os.path.exists(exe):
            print("missing %s: make micropython firmware setup" % exe, file=sys.stderr)
            return 2
    if not os.path.isdir(MPY_LIB):
        print("missing %s: make firmware" % MPY_LIB, file=sys.stderr)
        return 2
    commands = []
    print("%-10s %-14s %10s %12s" % ("module", "interpreter", "live heap", "min heapsize"))
    for module in modules:
        for label, exe, path, cap in RUNS:
            live = run(exe, path, cap, module)
            smallest = smallest_heap(exe, path, module, 1 << 20)
            print("%-10s %-14s %10s %12s" % (module, label, "%d B" % live if live else "failed",
                                             "%d B" % smallest))
            commands.append(command(exe, path, cap, module)[1])
    print("\ncommands (live heap; the minimum bisects the heapsize= value):")
    for line in commands:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
