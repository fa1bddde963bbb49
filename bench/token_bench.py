"""OpenPAYGo token decode cost under the MicroPython unix port (target: under 50 ms a token).

    .venv/bin/python bench/token_bench.py                 # 64-bit unix port (+ 32-bit frozen build if built)
    .venv/bin/python bench/token_bench.py --repeats 5

A decode hashes once per count from 0 up to the meter's last count + 64 (the reference's
search), so its cost grows with the count: the cases are a token accepted at the start, a
token at the maximum forward jump, and an invalid token (the whole search, the worst case) at
last counts 1, 100 and 500. The tokens come from the PyPI `openpaygo` encoder; the firmware runs
from the .mpy files tools/build_firmware.py makes (as on the device); bench/mpy/token_decode.py
times each decode with ticks_us. Figures are printed with the command that made them; nothing
here passes or fails on time.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys

from openpaygo import OpenPAYGOTokenEncoder, TokenType

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_firmware  # noqa: E402

KEY = "a29ab82edc5fbbc41ec9530f6dac86b1"
CODE = 123456789
TARGET_MS = 50
VERDICTS = {1: "ADD", 2: "SET", 3: "DISABLE", 4: "SYNC", 10: "INVALID", 11: "USED"}
FROZEN = os.path.join(ROOT, "build", "micropython", "micropython-frozen")


def cases(repeats):
    def add(count):
        return OpenPAYGOTokenEncoder.generate_token(secret_key=KEY, count=count, value=500,
                                                    token_type=TokenType.ADD_TIME,
                                                    starting_code=CODE)[1]
    out = []
    for last in (1, 100, 500):
        out.append(["accept next, count %d" % last, KEY, CODE, last, add(last), repeats])
        out.append(["accept +64 jump, count %d" % last, KEY, CODE, last, add(last + 62), repeats])
        out.append(["invalid (full search), count %d" % last, KEY, CODE, last, "000000001",
                    repeats])
    return out


def run(exe, path, cases_file, heap):
    env = dict(os.environ, MICROPYPATH=path)
    cmd = [exe, "-X", "heapsize=" + heap, os.path.join(ROOT, "bench", "mpy", "token_decode.py"),
           cases_file]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    line = "MICROPYPATH=%s %s" % (path, " ".join(shlex.quote(c) for c in cmd))
    return [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")], line


def report(title, rows, line):
    print("\n%s" % title)
    print("  %-34s %-8s %9s %9s %9s" % ("case", "verdict", "min ms", "median ms", "max ms"))
    for r in rows:
        print("  %-34s %-8s %9.2f %9.2f %9.2f" % (r["label"], VERDICTS[r["verdict"]], r["min_us"] / 1000,
                                                 r["median_us"] / 1000, r["max_us"] / 1000))
    worst = max(r["median_us"] for r in rows) / 1000
    print("  worst median %.2f ms against the %d ms target: %s" %
          (worst, TARGET_MS, "under" if worst < TARGET_MS else "OVER"))
    print("  command: %s" % line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--heap", default="64k")
    args = ap.parse_args()
    work = os.path.join(ROOT, "build", "token-bench")  # kept: the printed commands use it
    errors = build_firmware.build(os.path.join(work, "fw"))
    if errors:
        raise SystemExit("firmware build failed: %s" % errors)
    cases_file = os.path.join(work, "cases.json")
    with open(cases_file, "w") as f:
        json.dump(cases(args.repeats), f)
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    print("bench/token_bench.py: OpenPAYGo decode, %d repeats a case, heap %s" %
          (args.repeats, args.heap))
    print("reproduce: .venv/bin/python bench/token_bench.py --repeats %d --heap %s" %
          (args.repeats, args.heap))
    rows, line = run(exe, os.path.join(work, "fw", "lib"), cases_file, args.heap)
    report("MicroPython unix port (64-bit), firmware as .mpy", rows, line)
    if os.path.exists(FROZEN):
        rows, line = run(FROZEN, ".frozen", cases_file, args.heap)
        report("MicroPython 32-bit frozen build (make micropython): 31-bit small ints, as "
               "on the ESP32", rows, line)


if __name__ == "__main__":
    main()
