"""Fleet throughput: simulated meter-seconds per wall second for fleets of the real firmware
(one-second ticks, seeded households, PZEM path), and the peak memory per meter.

    .venv/bin/python bench/fleet_bench.py [--sizes 10,100,1000] [--workers 2] [--budget 60000]

Each fleet runs in fresh worker processes (one clock and event loop each, meters split evenly);
budget is the simulated meter-seconds per size, so every size takes about as long. Prints the
figures and the command that produced them; it never passes or fails on time.
"""
import argparse
import multiprocessing
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _one_worker(args):
    first, count, seconds, sensor = args
    from simulator.clock import VirtualClock
    from simulator.fleet import Fleet
    rss0 = _rss_kb("VmRSS")
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    fleet = Fleet(count, clock=VirtualClock(sleep_advances=False), sensor=sensor, first=first)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    rows = fleet.run(seconds)
    t2 = time.perf_counter()
    cpu2 = time.process_time()
    fleet.close()
    crashes = sum(r["crashes"] for r in rows)
    return {"meters": count, "build_s": t1 - t0, "run_s": t2 - t1, "cpu_s": cpu2 - cpu1,
            "build_cpu_s": cpu1 - cpu0, "rss0_kb": rss0,
            "hwm_kb": _rss_kb("VmHWM"), "crashes": crashes,
            "billed_wh": sum(r["billed_wh"] for r in rows),
            "true_wh": sum(r["true_wh"] for r in rows)}


def measure(meters, workers, seconds, sensor="pzem"):
    workers = max(1, min(workers, meters))
    sizes = [meters // workers + (1 if i < meters % workers else 0) for i in range(workers)]
    jobs, first = [], 0
    for size in sizes:
        jobs.append((first, size, seconds, sensor))
        first += size
    ctx = multiprocessing.get_context("fork")
    start = time.perf_counter()
    # maxtasksperchild=1: every worker is a fresh process, so its peak memory is this fleet's
    with ctx.Pool(workers, maxtasksperchild=1) as pool:
        parts = pool.map(_one_worker, jobs, chunksize=1)
    wall = time.perf_counter() - start
    run_wall = max(p["run_s"] for p in parts)
    meter_seconds = meters * seconds
    grown_kb = sum(p["hwm_kb"] - p["rss0_kb"] for p in parts)
    return {"meters": meters, "workers": workers, "virtual_s": seconds,
            "rate_run": meter_seconds / run_wall, "rate_total": meter_seconds / wall,
            "rate_cpu": meter_seconds / sum(p["cpu_s"] for p in parts),
            "wall_s": wall, "kb_per_meter": grown_kb / meters,
            "peak_process_mb": max(p["hwm_kb"] for p in parts) / 1024.0,
            "crashes": sum(p["crashes"] for p in parts),
            "billed_wh": sum(p["billed_wh"] for p in parts),
            "true_wh": sum(p["true_wh"] for p in parts)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget", type=int, default=60000,
                        help="simulated meter-seconds per fleet size")
    parser.add_argument("--sensor", choices=("pzem", "s0"), default="pzem")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print("command: %s %s" % (os.path.relpath(sys.executable, ROOT),
                              " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:])))
    print("machine: %d CPU(s), load average %s" % (os.cpu_count() or 0,
                                                  " ".join("%.2f" % x for x in os.getloadavg())))
    print("%7s %7s %9s %14s %14s %14s %9s %11s %9s" % (
        "meters", "workers", "virtual s", "meter-s/s run", "meter-s/s all", "per CPU-s",
        "wall s", "KB/meter", "peak MB"))
    for meters in sizes:
        seconds = max(10, args.budget // meters)
        r = measure(meters, args.workers, seconds, args.sensor)
        print("%7d %7d %9d %14.0f %14.0f %14.0f %9.1f %11.1f %9.1f%s" % (
            r["meters"], r["workers"], r["virtual_s"], r["rate_run"], r["rate_total"],
            r["rate_cpu"], r["wall_s"], r["kb_per_meter"], r["peak_process_mb"],
            "  CRASHES: %d" % r["crashes"] if r["crashes"] else ""))
        sys.stdout.flush()
    print("machine: load average at the end %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    print("meter-s/s run: simulated meter-seconds per wall second of the slowest worker's "
          "run phase; all: including process start and building the meters; per CPU-s: per "
          "CPU second the workers spent running (what one core gives, whatever else the "
          "machine is doing). KB/meter: peak RSS growth of the workers over their start, "
          "divided by the meters.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
