"""Build and check the firmware: .mpy files with mpy-cross, a banned-import check, pyright.

    python tools/build_firmware.py --out build/firmware           # build only
    python tools/build_firmware.py --out build/firmware --check   # build + import bans + pyright

The layout of the output is what goes onto the device: `main.py` at the root (MicroPython
runs it by name, so it stays source) and the package under `lib/meter/` as `.mpy` files.
"""
import argparse
import ast
import json
import os
import shutil
import subprocess
import sys

from source_tree import parse_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")

# Modules the ESP32 port does not have (or that only CPython has); the stubs ship typing.pyi and
# enum.pyi, so pyright alone would let those two through.
BANNED = {
    "typing", "typing_extensions", "dataclasses", "enum", "logging", "abc", "functools",
    "itertools", "hmac", "threading", "pathlib", "datetime", "subprocess", "multiprocessing",
    "contextvars", "decimal", "fractions", "simulator", "cloud", "tests", "hil",
}
# The ESP32's hardware modules: only the board module (relative to firmware/) imports them, so
# everything else runs on any board the firmware is handed, real or fake.
HARDWARE = {"machine", "network", "ntptime", "esp32"}
BOARD_MODULE = "meter/board.py"


# firmware/manifest.py is build input (which modules a frozen image holds), not device code.
NOT_FIRMWARE = {"manifest.py"}


def firmware_sources():
    for base, dirs, files in os.walk(FIRMWARE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py") and not (base == FIRMWARE and name in NOT_FIRMWARE):
                yield os.path.join(base, name)


def mpy_cross_exe():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return exe if os.path.exists(exe) else "mpy-cross"


def build(out):
    """Compile every firmware module; returns a list of (path, error text)."""
    errors = []
    if os.path.isdir(out):
        shutil.rmtree(out)
    for src in firmware_sources():
        rel = os.path.relpath(src, FIRMWARE)
        if rel == "main.py":
            dest = os.path.join(out, "main.py")
            os.makedirs(out, exist_ok=True)
            shutil.copyfile(src, dest)
            dest = os.path.join(out, ".check", "main.mpy")  # still compile it, to check syntax
        else:
            dest = os.path.join(out, "lib", rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        proc = subprocess.run([mpy_cross_exe(), "-o", dest, "-s", rel, src],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            errors.append((rel, (proc.stdout + proc.stderr).strip()))
    check_dir = os.path.join(out, ".check")
    if os.path.isdir(check_dir):
        shutil.rmtree(check_dir)
    return errors


def _imports():
    """Every absolute import in the firmware, anywhere in a module (top level, functions,
    try blocks), as (source path, line, module name)."""
    for src in firmware_sources():
        tree = parse_file(src)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                yield src, node.lineno, name


def banned_imports():
    """Every import of a module the device lacks, as (path, line, module)."""
    return [(os.path.relpath(src, ROOT), line, name) for src, line, name in _imports()
            if name.split(".")[0] in BANNED]


def hardware_imports():
    """Every import of a hardware module (HARDWARE) outside BOARD_MODULE, as (path, line,
    module)."""
    return [(os.path.relpath(src, ROOT), line, name) for src, line, name in _imports()
            if name.split(".")[0] in HARDWARE
            and os.path.relpath(src, FIRMWARE).replace(os.sep, "/") != BOARD_MODULE]


def pyright():
    """Type-check the firmware against micropython-esp32-stubs; returns (ok, output)."""
    exe = os.path.join(os.path.dirname(sys.executable), "pyright")
    if not os.path.exists(os.path.join(ROOT, "typings", "machine.pyi")):
        return False, "typings/ has no ESP32 stubs: run `make setup`"
    # --pythonpath /bin/false keeps pyright from falling back to the host's standard library.
    proc = subprocess.run([exe, "--outputjson", "--pythonpath", "/bin/false",
                           "-p", os.path.join(ROOT, "pyrightconfig.json")],
                          capture_output=True, text=True, cwd=ROOT)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return False, proc.stdout + proc.stderr
    diags = [d for d in report.get("generalDiagnostics", []) if d.get("severity") == "error"]
    lines = ["%s:%d: %s" % (os.path.relpath(d["file"], ROOT), d["range"]["start"]["line"] + 1,
                            d["message"]) for d in diags]
    return not diags, "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "firmware"))
    parser.add_argument("--check", action="store_true", help="also ban imports (CPython-only modules; hardware outside "
                             "the board module) and run pyright")
    args = parser.parse_args()
    failed = False
    for rel, err in build(args.out):
        print("mpy-cross %s: %s" % (rel, err))
        failed = True
    if args.check:
        for path, line, name in banned_imports():
            print("%s:%d: imports %s, which MicroPython on the ESP32 lacks" % (path, line, name))
            failed = True
        for path, line, name in hardware_imports():
            print("%s:%d: imports %s; only %s may touch the hardware"
                  % (path, line, name, BOARD_MODULE))
            failed = True
        ok, out = pyright()
        if not ok:
            print(out)
            failed = True
    print("firmware %s: %s" % ("FAILED" if failed else "ok", args.out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
