"""Firmware benchmark under the MicroPython unix port: heap, smallest heap cap for a day, tick CPU.

    .venv/bin/python bench/firmware_bench.py                     # everything (a few minutes)
    .venv/bin/python bench/firmware_bench.py --no-bisect         # skip the heap-cap search
    .venv/bin/python bench/firmware_bench.py --day-ticks 100 --no-bisect --tick-count 100
    .venv/bin/python bench/firmware_bench.py --interpreter frozen-32 --heap-kb 128

--interpreter picks the MicroPython: "pypi-64" (the PyPI unix port, 64-bit, the default),
"frozen-32" (build/micropython/micropython-bench-frozen: 32-bit, the firmware, the simulator's
fakes and these scripts frozen into the image) or "mpy-32" (micropython-bench-plain: 32-bit, the
fakes and scripts frozen, the firmware from .mpy into RAM); the 32-bit ones come from
`python3 tools/build_micropython.py --bench`. The month with the cloud link is
bench/firmware_month.py.

The firmware runs as the device runs it, from mpy-cross .mpy files (tools/build_firmware.py), on
the simulator's fake hardware (PZEM emulator on the UART, LCD decoder on I2C, relay pin, a flash
folder as the state root), with the simulator compiled to .mpy as well so its own compilation does
not weigh on the heap figures. Each figure comes from its own micropython process; the scripts it
runs are in bench/mpy/. Figures are printed with the commands that made them; nothing here passes
or fails on time.
"""
import argparse
import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from firmware_report import print_cap, print_heap, print_ticks  # noqa: E402

import simulator  # noqa: E402
from simulator.seam import fake_dirs  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from source_tree import parse_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
BENCH_MPY = os.path.join(ROOT, "bench", "mpy")
# The simulator modules a meter needs under MicroPython (simulator/meter.py and the CLI are
# CPython-only and not compiled).
SIM_MODULES = ("clock", "world", "sim_board", "board_context")

class BenchError(Exception):
    """The benchmark could not produce a figure (build failed, a run crashed)."""


# --- building what the micropython processes import ---------------------------------------

def _bin(name):
    exe = os.path.join(os.path.dirname(sys.executable), name)
    return exe if os.path.exists(exe) else name


def _mpy_cross(src, dest):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    proc = subprocess.run([_bin("mpy-cross"), "-o", dest, src], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError("mpy-cross %s: %s" % (src, proc.stdout + proc.stderr))


def _sources(folder, dest):
    return [(os.path.join(folder, n), os.path.join(dest, n[:-3] + ".mpy"))
            for n in sorted(os.listdir(folder)) if n.endswith(".py")]


def build(work, reuse=False):
    """Firmware .mpy (the device layout), simulator and bench scripts .mpy; returns the
    MICROPYPATH entries. reuse: keep a firmware build already in `work` (the tests)."""
    fw, sim = os.path.join(work, "fw"), os.path.join(work, "sim")
    # bench first: its time.mpy must shadow the port's time module; .frozen keeps asyncio.
    # The simulator is compiled into `sim` with the source's layout (hal/, devices/).
    path = simulator.micropython_path(os.path.join(sim, "bench"), os.path.join(fw, "lib"),
                                      base=sim)
    firmware = None
    if not (reuse and os.path.isdir(path[1])):
        firmware = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools",
                                                                  "build_firmware.py"),
                                     "--out", fw], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
    if os.path.isdir(sim):
        shutil.rmtree(sim)
    (hal_src, lib_src), (hal, lib) = fake_dirs(), fake_dirs(sim)
    jobs = _sources(hal_src, hal)
    jobs += [(os.path.join(lib_src, n + ".py"), os.path.join(lib, n + ".mpy"))
             for n in SIM_MODULES]
    jobs += _sources(os.path.join(lib_src, "devices"), os.path.join(lib, "devices"))
    jobs += _sources(BENCH_MPY, path[0])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda job: _mpy_cross(*job), jobs))
    output = firmware.communicate()[0] if firmware else ""
    if firmware and firmware.returncode != 0:
        raise BenchError("firmware build failed:\n" + output)
    return path


MP_BUILD = os.path.join(ROOT, "build", "micropython")
INTERPRETERS = ("pypi-64", "frozen-32", "mpy-32")


def interpreter(name, path):
    """(executable, MICROPYPATH entries) for --interpreter, given build()'s path."""
    if name == "pypi-64":
        return _bin("micropython"), path
    exe = os.path.join(MP_BUILD, "micropython-bench-" + ("frozen" if name == "frozen-32"
                                                         else "plain"))
    if not os.path.exists(exe):
        raise BenchError("%s missing: python3 tools/build_micropython.py --bench" % exe)
    return exe, ([".frozen"] if name == "frozen-32" else [path[1], ".frozen"])


class Runner:
    """Runs one bench script call per micropython process and remembers the command lines."""

    def __init__(self, path, work, exe=None):
        self.path = path
        self.work = work
        self.exe = exe or _bin("micropython")
        self.commands = {}
        self._flash_n = 0

    def flash_dir(self):
        self._flash_n += 1
        # Fixed width: the length of a path changes allocation sizes, and so where a tight
        # heap fragments.
        path = os.path.join(self.work, "flash%04d" % self._flash_n)
        os.makedirs(path, exist_ok=True)
        return path

    def command(self, code, heap_kb):
        return [self.exe, "-X", "heapsize=%dk" % heap_kb, "-c", code]

    def shell_line(self, code, heap_kb):
        return "MICROPYPATH=%s %s" % (":".join(self.path),
                                      " ".join(shlex.quote(a) for a in self.command(code, heap_kb)))

    def run(self, label, code, heap_kb, timeout=900):
        self.commands.setdefault(label, self.shell_line(code, heap_kb))
        env = dict(os.environ, MICROPYPATH=":".join(self.path))
        try:
            return subprocess.run(self.command(code, heap_kb), capture_output=True, text=True,
                                  env=env, cwd=self.work, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BenchError("%s: no answer after %d s" % (label, timeout)) from exc

    def run_json(self, label, code, heap_kb):
        proc = self.run(label, code, heap_kb)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise BenchError("%s failed (status %d):\n%s%s" % (label, proc.returncode,
                                                               proc.stdout, proc.stderr))
        return json.loads(lines[-1]), lines[:-1]


def call(module, func, *args):
    """The -c program: `import module; module.func(args)`, arguments written as JSON (which is
    valid Python for the strings, numbers and lists used here, and quotes readably)."""
    return "import %s; %s.%s(%s)" % (module, module, func, ", ".join(json.dumps(a) for a in args))


# --- (1) heap: the firmware's code by module, the app's data ------------------------------

def firmware_modules():
    """{module name: set of firmware modules it imports at module level}."""
    deps = {}
    base = os.path.join(FIRMWARE, "meter")
    for folder, _, files in os.walk(base):
        for name in files:
            if not name.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), FIRMWARE)[:-3].replace(os.sep, ".")
            mod = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
            deps[mod] = _top_level_imports(parse_file(os.path.join(folder, name)))
    return {m: set(d for d in ds if d in deps and d != m) for m, ds in deps.items()}


def _top_level_imports(tree):
    # Imports inside functions are lazy (drivers the board picks): they are not dependencies.
    found = set()
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update([node.module] + [node.module + "." + a.name for a in node.names])
        elif isinstance(node, (ast.Try, ast.If, ast.ExceptHandler)):
            for field in ("body", "orelse", "handlers", "finalbody"):
                nodes.extend(getattr(node, field, []))
    return found


def import_order(wanted, deps):
    """wanted modules, each after the firmware modules it imports (leaves first)."""
    order, done = [], set()

    def visit(mod, stack):
        if mod in done or mod in stack:
            return
        for dep in sorted(deps.get(mod, ())):
            visit(dep, stack + (mod,))
        done.add(mod)
        order.append(mod)

    for mod in sorted(wanted):
        visit(mod, ())
    return [m for m in order if m in wanted and m not in ("meter", "meter.drivers")]


_QSTR = re.compile(r"n_pool=(\d+).*n_total_bytes=(\d+)")


def qstr_marks(lines):
    """[(label, qstr pools, qstr bytes)] from heap.py's `qstr-mark` lines, in order."""
    marks, label = [], None
    for line in lines:
        if line.startswith("qstr-mark "):
            label = line.split(" ", 1)[1]
        elif label is not None and _QSTR.search(line):
            pools, total = _QSTR.search(line).groups()
            marks.append((label, int(pools), int(total)))
            label = None
    return marks


def measure_heap(runner, heap_kb, ticks, fw_lib):
    flash = runner.flash_dir()
    loaded, _ = runner.run_json("modules", call("heap", "loaded_modules", flash), heap_kb)
    deps = firmware_modules()
    order = import_order(set(loaded), deps)
    extra = import_order(set(deps) - set(loaded), deps)
    code = call("heap", "main", runner.flash_dir(), order, extra, ticks)
    out, lines = runner.run_json("heap", code, heap_kb)
    marks = qstr_marks(lines)
    growth = {label: (pools, total - marks[i - 1][2]) for i, (label, pools, total)
              in enumerate(marks) if i}
    for row in out["modules"] + out["not_loaded"]:
        row.append(growth.get(row[0], (0, None))[1])
        row.append(_mpy_size(fw_lib, row[0]))
    out["qstr_pools"] = {label: pools for label, pools, _ in marks}
    out["data_qstr"] = growth.get("after-boot", (0, 0))[1] + growth.get("after-ticks", (0, 0))[1]
    return out


def _mpy_size(fw_lib, module):
    path = os.path.join(fw_lib, *module.split(".")) + ".mpy"
    if not os.path.exists(path):
        path = os.path.join(fw_lib, *module.split("."), "__init__.mpy")
    return os.path.getsize(path) if os.path.exists(path) else None


# --- (2) the smallest heap cap for a simulated day ----------------------------------------

def run_day(runner, heap_kb, ticks):
    """(passed, the run's last line) for one day at one heap cap, in its own process."""
    proc = runner.run("day", call("day", "main", runner.flash_dir(), ticks), heap_kb)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    last = lines[-1] if lines else "(no output)"
    ok = proc.returncode == 0 and proc.stdout.startswith("day-ok")
    if not ok and "MemoryError" not in proc.stdout + proc.stderr:
        raise BenchError("day at %d KB failed for another reason than memory:\n%s%s" % (
            heap_kb, proc.stdout, proc.stderr))
    where = [ln for ln in lines if ln.startswith("day-")]
    return ok, (where[0] if where else last)


def bisect_cap(runner, ticks, good_kb, bad_kb, jobs, step_kb=1):
    """Smallest passing cap between a failing and a passing one; each probe its own process,
    `jobs` at a time. Assumes a larger heap never fails where a smaller one passed."""
    probes = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while good_kb - bad_kb > step_kb:
            span = good_kb - bad_kb
            caps = sorted(set(bad_kb + max(step_kb, span * (i + 1) // (jobs + 1))
                              for i in range(jobs)))
            caps = [c for c in caps if bad_kb < c < good_kb]
            results = list(pool.map(lambda c: (c,) + run_day(runner, c, ticks), caps))
            probes.extend(results)
            for cap, ok, _ in results:
                if ok:
                    good_kb = min(good_kb, cap)
            bad_kb = max([bad_kb] + [c for c, ok, _ in results if not ok and c < good_kb])
    return good_kb, bad_kb, probes


def measure_cap(runner, ticks, start_kb, jobs, floor_kb=1, scan_kb=8):
    """floor_kb: a cap known to fail (below the live heap measured in (1), nothing fits)."""
    ok, line = run_day(runner, start_kb, ticks)
    good = start_kb
    while not ok:
        good *= 2
        if good > 16384:
            raise BenchError("a day does not complete even with 16 MB: " + line)
        ok, line = run_day(runner, good, ticks)
    cap, bad, probes = bisect_cap(runner, ticks, good, max(1, min(floor_kb, good - 1)), jobs)
    # Fragmentation makes "fits" non-monotonic near the edge: try the caps around it too.
    seen = set(p[0] for p in probes)
    near = [c for c in range(max(1, cap - scan_kb), cap + scan_kb + 1) if c not in seen]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        probes.extend(pool.map(lambda c: (c,) + run_day(runner, c, ticks), near))
    cap = min(c for c, ok, _ in probes if ok)
    bad = max([c for c, ok, _ in probes if not ok and c < cap] or [bad])
    failing = [c for c, ok, _ in probes if not ok and c > cap]
    return {"cap_kb": cap, "fails_kb": bad, "probes": probes,
            "all_above_kb": max(failing) + 1 if failing else cap, "scan_kb": scan_kb}


# --- (3) CPU time of one tick --------------------------------------------------------------

def stats(values):
    """Nearest-rank percentiles, in whole microseconds."""
    vals = sorted(values)
    if not vals:
        return {"n": 0}
    rank = lambda p: vals[min(len(vals) - 1, -(-len(vals) * p // 100) - 1)]  # noqa: E731
    return {"n": len(vals), "median": rank(50), "p90": rank(90), "p99": rank(99),
            "max": vals[-1], "mean": sum(vals) / len(vals)}


def tick_figures(out, lines):
    """Per-tick rows of one tick.main run -> the summary, fakes and firmware split out."""
    rows = [tuple(int(x) for x in ln.split()[1:]) for ln in lines if ln.startswith("tick ")]
    steady = [r for r in rows if not r[3]]
    out["all"] = stats(r[0] for r in rows)
    out["no_persist"] = stats(r[0] for r in steady)
    out["persist"] = stats(r[0] for r in rows if r[3])
    if "proxy_call_us" in out:
        # A proxy's own cost, measured on a fake that does nothing, is taken out of both sides.
        c_in = out["proxy_inside_us"]
        c_out = out["proxy_call_us"] - c_in
        out["fakes"] = stats(r[1] - r[2] * c_in for r in steady)
        out["firmware"] = stats(r[0] - r[1] - r[2] * c_out for r in steady)
        out["fake_calls_per_tick"] = sum(r[2] for r in steady) / max(1, len(steady))
    return out


def measure_ticks(runner, heap_kb, warm, count, repeats):
    results = {}
    for variant in ("sim", "split", "trivial", "driver"):
        runs = []
        for _ in range(repeats):
            code = call("tick", "main", runner.flash_dir(), variant, warm, count)
            runs.append(tick_figures(*runner.run_json("tick-" + variant, code, heap_kb)))
        results[variant] = runs
    return results


# --- the run -------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interpreter", choices=INTERPRETERS, default="pypi-64",
                   help="which MicroPython runs the firmware (see above)")
    p.add_argument("--heap-kb", type=int, default=512,
                   help="heap cap for the heap and tick runs (default 512)")
    p.add_argument("--heap-ticks", type=int, default=300, help="ticks before the heap is taken")
    p.add_argument("--day-ticks", type=int, default=86400, help="ticks in the simulated day")
    p.add_argument("--no-bisect", action="store_true",
                   help="run the day once at --heap-kb instead of searching the smallest cap")
    p.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="micropython processes at a time in the cap search")
    p.add_argument("--warm", type=int, default=120, help="ticks before the timed ones")
    p.add_argument("--tick-count", type=int, default=3000, help="timed ticks per run")
    p.add_argument("--repeats", type=int, default=3, help="runs per tick variant")
    p.add_argument("--work", help="folder for the build and the flash folders (default: temp)")
    p.add_argument("--json", help="also write every figure to this file")
    p.add_argument("--reuse-build", action="store_true",
                   help="keep the firmware build already in --work instead of building again")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    work = args.work or tempfile.mkdtemp(prefix="mita-fwbench-")
    os.makedirs(work, exist_ok=True)
    shown = [os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT)
             else sys.executable, "bench/firmware_bench.py"] + list(
        sys.argv[1:] if argv is None else argv)
    print("# mita firmware benchmark (MicroPython unix port, %s)" % args.interpreter)
    print("command: " + " ".join(shlex.quote(a) for a in shown))
    path = build(work, reuse=args.reuse_build)
    exe, mp_path = interpreter(args.interpreter, path)
    runner = Runner(mp_path, work, exe)
    fw_lib = path[1]
    figures = {"work": work}
    figures["heap"] = heap = measure_heap(runner, args.heap_kb, args.heap_ticks, fw_lib)
    print_heap(heap)
    figures["ticks"] = measure_ticks(runner, args.heap_kb, args.warm, args.tick_count,
                                     args.repeats)
    print_ticks(figures["ticks"], args.heap_kb)
    figures["load_average"] = os.getloadavg()
    print("load average while timing: %.2f %.2f %.2f on %d CPUs (medians resist a busy machine, "
          "p99 and max do not)" % (figures["load_average"] + (os.cpu_count() or 0,)))
    print("\n## (2) a simulated day: %d one-second ticks" % args.day_ticks)
    ok, line = run_day(runner, args.heap_kb, args.day_ticks)
    print("at %d KB: %s" % (args.heap_kb, line))
    figures["day"] = {"heap_kb": args.heap_kb, "ok": ok, "line": line}
    if not args.no_bisect:
        cap = measure_cap(runner, args.day_ticks, args.heap_kb, args.jobs,
                          floor_kb=heap["live"] * 3 // 4 // 1024)
        figures["day"].update(cap)
        print_cap(cap, heap)
    print("\n## commands (MicroPython side, as run from %s)" % work)
    for label, line in runner.commands.items():
        print("%s: %s" % (label, line))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print("firmware bench: %s" % exc, file=sys.stderr)
        sys.exit(2)
