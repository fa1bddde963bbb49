"""The firmware benchmark's printed report: the figures of bench/firmware_bench.py as tables,
each against its target (a figure is reported, never failed)."""
import statistics

TARGET_LIVE_KB = 32
TARGET_CAP_KB = 48
TARGET_TICK_US = 300


def print_heap(out):
    kb = lambda n: n / 1024.0  # noqa: E731
    print("\n## (1) live heap after gc.collect(), app running (%d ticks)" % out["ticks"])
    print("simulator + bench modules   %7.1f KB  (not on the device)" % kb(out["sim_code"]))
    print("simulator objects (board)   %7.1f KB  (not on the device)" % kb(out["sim_objects"]))
    print("firmware code (imports)     %7.1f KB" % kb(out["code"]))
    print("app data after boot         %7.1f KB" % kb(out["data_after_boot"]))
    print("app data after the ticks    %7.1f KB  (least of 5 readings; they spread %.1f KB)" % (
        kb(out["data"]), kb(out["data_spread"])))
    pools = out["qstr_pools"]
    print("  of which qstr pools       %7.1f KB  (%d pools after the imports, %d after the ticks: "
          "a pool doubles when full, and lands where it lands)" % (
              kb(out["data_qstr"]), pools.get(out["modules"][-1][0], 0) if out["modules"] else 0,
              pools.get("after-ticks", 0)))
    fw = out["code"] + out["data"]
    print("firmware total (code+data)  %7.1f KB   target <= %d KB: %s" % (
        kb(fw), TARGET_LIVE_KB, "met" if fw <= TARGET_LIVE_KB * 1024 else "MISSED"))
    print("whole process live heap     %7.1f KB of a %d KB heap" % (
        kb(out["live"]), out["heap_total"] // 1024))
    print("\nper-module import cost (leaves first; qstr = interned names and strings, a new qstr "
          "pool lands on the module that needs it)")
    print("%-26s %8s %8s %8s" % ("module", "heap B", "qstr B", ".mpy B"))
    for name, cost, _, q, size in sorted(out["modules"], key=lambda r: -r[1]):
        print("%-26s %8d %8s %8s" % (name, cost, q if q is not None else "-", size or "-"))
    if out["not_loaded"]:
        print("not loaded by this meter (cost if imported later):")
        for name, cost, _, q, size in out["not_loaded"]:
            print("%-26s %8d %8s %8s" % (name, cost, q if q is not None else "-", size or "-"))
    print("\napp data by the attribute holding it (freed when dropped in this order; shared "
          "objects count for the last holder):")
    for name, freed in out["data_by_attribute"]:
        print("  %-28s %6d B" % (name, freed))
    rest = out["data"] - sum(f for _, f in out["data_by_attribute"])
    print("  %-28s %6d B  (fake hardware objects the board made, buffers, stack-held)" % (
        "not freed by dropping", rest))


def _med(runs, key, sub=None):
    return statistics.median(r[key] if sub is None else r[key][sub] for r in runs)


def print_ticks(t, heap_kb):
    sim, split, trivial, driver = t["sim"], t["split"], t["trivial"], t["driver"]
    n = len(sim)
    print("\n## (3) CPU time of app.tick(), time.ticks_us, display on, %d KB heap "
          "(median of %d run%s)" % (heap_kb, n, "" if n == 1 else "s"))
    print("%-34s %7s %7s %7s %7s %5s" % ("", "median", "p90", "p99", "max", "n"))
    for label, runs, key in (("sim fakes, every tick", sim, "all"),
                             ("sim fakes, ticks without persist", sim, "no_persist"),
                             ("sim fakes, ticks that persisted", sim, "persist"),
                             ("trivial fakes, every tick", trivial, "all"),
                             ("trivial fakes, without persist", trivial, "no_persist"),
                             ("PZEM driver read(), canned reply", driver, "all")):
        if runs[0][key].get("n"):
            print("%-34s %7.0f %7.0f %7.0f %7.0f %5d" % ((label,) + tuple(
                _med(runs, key, q) for q in ("median", "p90", "p99", "max")) + (
                runs[0][key]["n"],)))
    med = _med(sim, "all", "median")
    print("median tick %.0f us   target < %d us: %s" % (med, TARGET_TICK_US,
                                                      "met" if med < TARGET_TICK_US else "MISSED"))
    print("split, ticks without persist (timing proxies around the fakes, their own cost "
          "taken out): fakes %.0f us + firmware %.0f us (medians; %.1f fake calls a tick)" % (
              _med(split, "fakes", "median"), _med(split, "firmware", "median"),
              _med(split, "fake_calls_per_tick")))
    print("firmware alone (trivial fakes, median) %.0f us + PZEM driver %.0f us = %.0f us" % (
        _med(trivial, "no_persist", "median"), _med(driver, "all", "median"),
        _med(trivial, "no_persist", "median") + _med(driver, "all", "median")))
    per_tick = lambda runs: _med(runs, "churn") / runs[0]["churn_ticks"]  # noqa: E731
    print("allocated and dropped a tick (GC held off, %d ticks): %.0f B with the sim fakes, "
          "%.0f B with trivial fakes" % (sim[0]["churn_ticks"], per_tick(sim), per_tick(trivial)))
    print("one full gc.collect() with this heap: %.0f us (the sim's objects included)" % (
        _med(sim, "gc_collect_us")))
    print("the bench's virtual time.ticks_ms adds %.1f us per call (Python, not C)" % (
        _med(sim, "ticks_ms_call_us")))


def print_cap(cap, heap):
    for kb, ok, line in sorted(cap["probes"]):
        print("  probe %4d KB: %s" % (kb, "completes" if ok else line))
    print("smallest -X heapsize for the day: %d KB (%d KB fails)   target <= %d KB: %s" % (
        cap["cap_kb"], cap["fails_kb"], TARGET_CAP_KB,
        "met" if cap["cap_kb"] <= TARGET_CAP_KB else "MISSED"))
    top = cap["cap_kb"] + cap["scan_kb"]
    if cap["all_above_kb"] > top:
        print("caps up to %d KB still fail above it: no settled range within %d KB (the edge is "
              "fragmentation, not a size)" % (top, cap["scan_kb"]))
    else:
        print("every cap from %d KB to %d KB completes (non-monotonic edge: %s)" % (
            cap["all_above_kb"], top, "yes" if cap["all_above_kb"] > cap["cap_kb"] else "none"))
    sim_kb = (heap["sim_code"] + heap["sim_objects"]) / 1024.0
    print("the simulator holds %.1f KB of it live; the firmware's share is about %.1f KB" % (
        sim_kb, cap["cap_kb"] - sim_kb))
