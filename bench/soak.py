"""Soak: a fleet of meters against the cloud and mosquitto for a simulated hour, with the memory
of every process sampled; prints each process's growth per hour (it should be flat).

    .venv/bin/python bench/soak.py                                  # 10,000 meters, 1 hour
    .venv/bin/python bench/soak.py --meters 10000 --minutes 10 --speed 6   # the hour in 10 min
    .venv/bin/python bench/soak.py --meters 500 --minutes 2 --speed 30

The rig is bench/link_latency.py's: `python -m cloud serve` (SQLite, the Daraja stand-in) and
mosquitto from the files cloud.link.mosquitto writes; the fleet is its protocol-speaking client
(MQTT 3.1.1, one connection per meter, telemetry every 10 simulated seconds) in worker
processes. --speed compresses time: telemetry every 10/speed real seconds, so --minutes of wall
time are minutes x speed simulated. A KES 10 C2B payment goes to a random meter every simulated
minute, so the payment path, recharge delivery and acks run too. RSS (VmRSS) of the cloud, the
broker and every fleet worker is read from /proc every --sample-s; after a warm-up (the first
fifth of the run) the growth is the least-squares slope, given per simulated hour. Figures
only: nothing here passes or fails on time.

--tracemalloc FILE runs the cloud under tracemalloc (MITA_TRACEMALLOC, cloud/memtrace.py) and
signals it --reports times, evenly from the end of the warm-up to the end: FILE then holds, per
report, what grew since the first one and since the previous one, by allocating call stack
(tracing slows the cloud and adds to its RSS: compare the reports, not that run's RSS).
"""
import argparse
import asyncio
import os
import random
import shutil
import signal
import sys
import tempfile
import time

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from link_latency import MOSQUITTO, Rig, pay, prepare_store, start_fleet  # noqa: E402


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def slope(points):
    """Least-squares slope of [(t, y)], per unit of t."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else 0.0


async def soak(args, rig, accounts, workers):
    procs = {"cloud": rig.procs[0].pid, "mosquitto": rig.procs[1].pid}
    procs.update({"fleet worker %d" % i: w.pid for i, w in enumerate(workers)})
    samples = {name: [] for name in procs}
    start = time.monotonic()
    end = start + args.minutes * 60
    next_pay = start
    paid = 0
    reports = _report_times(args) if args.tracemalloc else []
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            now = time.monotonic()
            sim_h = (now - start) * args.speed / 3600
            for name, pid in procs.items():
                kb = rss_kb(pid)
                if kb is not None:
                    samples[name].append((sim_h, kb))
            while next_pay <= now:  # one payment a simulated minute
                paid += 1
                meter_no = random.choice(accounts)[0]
                await pay(session, rig.http_port, meter_no, "QS%08d" % paid)
                next_pay += 60 / args.speed
            if reports and sim_h >= reports[0]:
                reports.pop(0)
                os.kill(procs["cloud"], signal.SIGUSR1)  # cloud/memtrace.py appends a report
            await asyncio.sleep(args.sample_s)
    return samples, paid


def _report_times(args):
    """Simulated hours at which the cloud reports: the end of the warm-up, then evenly on
    (the last a little before the end, so the signal lands while the fleet still runs)."""
    hours = args.minutes * args.speed / 60
    n = max(2, args.reports)
    return [hours * (0.2 + 0.79 * i / (n - 1)) for i in range(n)]


async def run(args):
    if not os.path.exists(MOSQUITTO):
        sys.exit("mosquitto not found (apt-get install mosquitto)")
    folder = tempfile.mkdtemp(prefix="mita-soak-")
    accounts = await prepare_store(os.path.join(folder, "mita.sqlite3"), args.meters)
    env = {"MITA_TRACEMALLOC": os.path.abspath(args.tracemalloc)} if args.tracemalloc else {}
    rig = Rig(folder, cloud_env=env)
    rig.start()
    workers = []
    try:
        async with aiohttp.ClientSession() as session:
            await rig.wait_ready(session, accounts)
        workers = start_fleet(rig.meter_ports, accounts, args.workers, 10.0 / args.speed)
        samples, paid = await soak(args, rig, accounts, workers)
    finally:
        for w in workers:
            w.terminate()
        rig.stop()
        shutil.rmtree(folder, ignore_errors=True)
    sim_h = args.minutes * args.speed / 60
    traced = (" --tracemalloc %s --reports %d" % (args.tracemalloc, args.reports)
              if args.tracemalloc else "")
    print("command: .venv/bin/python bench/soak.py --meters %d --minutes %g --speed %g "
          "--workers %d --sample-s %g%s" % (args.meters, args.minutes, args.speed, args.workers,
                                           args.sample_s, traced))
    print("%d meters, telemetry every 10 simulated s, %.2f simulated hours (%g wall minutes), "
          "%d payments" % (args.meters, sim_h, args.minutes, paid))
    print("%-16s %10s %10s %16s %16s %16s" % ("process", "RSS start", "RSS end",
                                              "growth/sim hour", "first half", "second half"))
    for name, points in samples.items():
        if not points:
            continue
        warm = [p for p in points if p[0] >= points[-1][0] / 5] or points
        mid = (warm[0][0] + warm[-1][0]) / 2
        first = [p for p in warm if p[0] <= mid]
        second = [p for p in warm if p[0] >= mid]
        # a cache filling up slows down; a leak keeps its pace: the halves tell them apart
        print("%-16s %8d KB %8d KB %13.0f KB %13.0f KB %13.0f KB" % (
            name, warm[0][1], points[-1][1], slope(warm), slope(first), slope(second)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--meters", type=int, default=10000)
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock minutes")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--sample-s", type=float, default=5.0)
    p.add_argument("--tracemalloc", metavar="FILE", help="the cloud's memory reports, here")
    p.add_argument("--reports", type=int, default=5)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
