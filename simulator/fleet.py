# Many simulated meters on one virtual clock and one event loop, each with its own world,
# board, flash folder and config; optionally split over worker processes (one clock each) to
# use every core. Ends with one summary row per meter: true energy against billed, balances.
import asyncio
import os
import shutil
import tempfile
import time

from simulator.clock import FAST, REAL, VirtualClock
from simulator.seam import install  # the one seam: paths and the virtual clock
from simulator.meter import meter_summary
from simulator.scenario import Scenario

DAY_S = 86400


class FleetError(Exception):
    pass


def fleet_scenario(sensor="pzem", start_kes=2000):
    """The default fleet: seeded households, KES start_kes each, the default tariff."""
    return Scenario({"name": "fleet", "sensor": sensor, "start_balance_kes": start_kes,
                     "load": {"kind": "household"}, "duration": "1d"})


class Fleet:
    """meters: how many; first: index of the first (so worker slices number them apart)."""

    def __init__(self, meters, scenario=None, clock=None, base_dir=None, sensor=None, first=0,
                 seed=1, cloud_url=None):
        if meters < 1:
            raise FleetError("a fleet needs at least one meter")
        self.scenario = scenario or fleet_scenario(sensor or "pzem")
        # Blocking sleeps in the firmware (LCD init) must not push a clock shared by all.
        self.clock = clock or VirtualClock(sleep_advances=False)
        install(self.clock)
        self._own_dir = base_dir is None
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="mita-fleet-")
        self.meters = []
        for i in range(first, first + meters):
            meter_id = "SIM%05d" % (i + 1)
            self.meters.append(self.scenario.make_meter(
                self.clock, os.path.join(self.base_dir, meter_id), meter_id=meter_id,
                seed=seed * 1000003 + i, sensor=sensor, cloud_url=cloud_url))

    async def run_for(self, seconds, progress=None, report_every_s=None):
        """Run every meter for `seconds` of virtual time; progress(done_s) now and then."""
        loop = asyncio.get_running_loop()
        t0 = self.clock.now_ms()
        for i, meter in enumerate(self.meters):
            meter.start(loop)
            self.scenario.apply(meter, loop, origin_ms=t0, seed=self.scenario.seed + i)
        step = report_every_s or max(1.0, seconds / 200.0)
        done = 0.0
        try:
            while done < seconds:
                step_s = min(step, seconds - done)
                await asyncio.sleep(step_s)
                done = (self.clock.now_ms() - t0) / 1000.0
                if progress is not None:
                    progress(min(done, seconds))
        finally:
            for meter in self.meters:
                meter.stop()

    def run(self, seconds, progress=None):
        self.clock.run(self.run_for(seconds, progress))
        return self.summary()

    def summary(self):
        return [meter_summary(m) for m in self.meters]

    def close(self):
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


# --- worker processes ------------------------------------------------------------------------

def _worker(args):
    first, count, seconds, speed, sensor, seed, cloud_url, queue = args
    clock = VirtualClock(mode=FAST if speed is None else REAL, speed=speed or 1,
                         sleep_advances=False)
    fleet = Fleet(count, clock=clock, sensor=sensor, first=first, seed=seed, cloud_url=cloud_url)
    last = [0.0]

    def progress(done):
        if queue is not None:
            queue.put(count * (done - last[0]))
        last[0] = done

    try:
        return fleet.run(seconds, progress)
    finally:
        fleet.close()


def run_fleet(meters, seconds, speed=None, sensor="pzem", workers=1, seed=1, cloud_url=None,
              progress=None):
    """Run `meters` meters for `seconds` virtual seconds, over `workers` processes.

    speed None: fast-forward (as fast as the CPU allows); a number: that many times real time.
    progress(meter_seconds_done) is called from this process. Returns (rows, wall seconds).
    """
    workers = max(1, min(workers, meters))
    start = time.perf_counter()
    if workers == 1:
        clock = VirtualClock(mode=FAST if speed is None else REAL, speed=speed or 1,
                             sleep_advances=False)
        fleet = Fleet(meters, clock=clock, sensor=sensor, seed=seed, cloud_url=cloud_url)
        try:
            rows = fleet.run(seconds, None if progress is None
                             else (lambda done: progress(done * meters)))
        finally:
            fleet.close()
        return rows, time.perf_counter() - start
    rows = _run_workers(meters, seconds, speed, sensor, workers, seed, cloud_url, progress)
    return rows, time.perf_counter() - start


def _run_workers(meters, seconds, speed, sensor, workers, seed, cloud_url, progress):
    import multiprocessing
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    manager_queue = ctx.Manager().Queue() if progress is not None else None
    sizes = [meters // workers + (1 if i < meters % workers else 0) for i in range(workers)]
    jobs = []
    first = 0
    for size in sizes:
        jobs.append((first, size, seconds, speed, sensor, seed, cloud_url, manager_queue))
        first += size
    with ctx.Pool(workers) as pool:
        pending = pool.map_async(_worker, jobs)
        done = 0.0
        while not pending.ready() or (manager_queue is not None and not manager_queue.empty()):
            if manager_queue is None:
                pending.wait(0.2)
                continue
            try:
                done += manager_queue.get(timeout=0.2)
                progress(done)
            except Exception:  # noqa: BLE001 - queue.Empty from the manager
                pass
        parts = pending.get()
    return [row for part in parts for row in part]


def totals(rows):
    """Fleet-wide sums and the billed-versus-true error in percent."""
    true_wh = sum(r["true_wh"] for r in rows)
    billed_wh = sum(r["billed_wh"] for r in rows)
    return {
        "meters": len(rows),
        "true_wh": true_wh,
        "billed_wh": billed_wh,
        "error_pct": 0.0 if not true_wh else 100.0 * (billed_wh - true_wh) / true_wh,
        "billed_cents": sum(r["billed_cents"] for r in rows),
        "balance_cents": sum(r["balance_cents"] or 0 for r in rows),
        "disconnections": sum(r["disconnections"] for r in rows),
        "sensor_failures": sum(r["sensor_failures"] for r in rows),
        "crashes": sum(r["crashes"] for r in rows),
    }
