"""Benchmark: the whole meter with its cloud link up for 30 simulated days on the 32-bit builds,
under a heap cap; the smallest cap that survives, frozen and with the firmware as .mpy in RAM.

    python3 tools/build_micropython.py --bench          # the bench images, about 40 s
    .venv/bin/python bench/firmware_month.py            # both builds: search, then 30 days
    .venv/bin/python bench/firmware_month.py --builds frozen --days 30 --search-days 2
    .venv/bin/python bench/firmware_month.py --builds frozen --days 30 --at 131072  # one run
    .venv/bin/python bench/firmware_month.py --builds frozen --image /tmp/before --days 2 --at 90112

The meter is bench/mpy/month.py in build/micropython/micropython-bench-{frozen,plain}: the
simulator's board, household and the bench scripts are frozen into those images beside (or, for
"plain", without) the firmware, so their code is not on the heap; their objects are, and each
run prints them ("sim", measured before the firmware boots) so the firmware's share is the cap
less that. On the other end: mosquitto and `python -m cloud serve` (SQLite, the Daraja stand-in),
as bench/link_latency.py starts them; the meter connects with its own login and device key, sends
telemetry every 10 s and its history, and is paid KES 10 by a C2B confirmation every
--pay-every-h virtual hours, which the cloud delivers as a signed recharge.

For each build: the smallest cap (bisected to --step bytes) that survives --search-days, then a
run of --days at that cap (and, if that fails, at each step up until one passes). Every command
is printed. Figures only: nothing here passes or fails on time.
"""

import argparse
import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from link_latency import MOSQUITTO, Rig, pay, prepare_store  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MP = os.path.join(ROOT, "build", "micropython")
BUILDS = {"frozen": (os.path.join(MP, "micropython-bench-frozen"), False, 128 * 1024),
          "plain": (os.path.join(MP, "micropython-bench-plain"), True, 256 * 1024)}
DAY_S = 86400


class Month:
    """One micropython process running bench/mpy/month.py against the rig."""

    def __init__(self, rig, session, exe, path, cap, seconds, account, flash, pay_every_h):
        self.rig, self.session = rig, session
        self.meter_no, self.password, self.key = account
        call = "import month; month.main(%r, %d, '127.0.0.1', %d, %r, %r, %r)" % (
            flash, seconds, rig.mqtt_port, self.meter_no, self.password, self.key)
        self.argv = [exe, "-X", "heapsize=%d" % cap, "-c", call]
        self.env = dict(os.environ, MICROPYPATH=path)
        # the printed command names the meter's secrets, it does not show them
        shown = call.replace(repr(self.password), "PASSWORD").replace(repr(self.key), "KEY")
        self.shown = "MICROPYPATH=%s %s -X heapsize=%d -c %s" % (
            _rel(path), _rel(exe), cap, shlex.quote(shown))
        self.flash = flash
        self.pay_every_h = pay_every_h
        self.lines = []

    async def run(self):
        """(True, {figures}) when the month ended well; (False, {"why": ...}) otherwise."""
        os.makedirs(self.flash, exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, cwd=self.flash, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        paid = 0
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if line.startswith("hour "):
                hour = int(line.split()[1])
                if hour % self.pay_every_h == 0:
                    paid += 1
                    await pay(self.session, self.rig.http_port, self.meter_no,
                              "QM%s%04d" % (self.meter_no[-4:], paid))
        await proc.wait()
        last = [line for line in self.lines if line.startswith("month-")]
        if proc.returncode == 0 and last and last[-1].startswith("month-ok"):
            figures = dict(kv.split("=", 1) for kv in last[-1].split()[1:])
            figures["paid"] = str(paid)
            return True, figures
        tail = [line for line in self.lines if not line.startswith("hour ")][-2:]
        hours = [line for line in self.lines if line.startswith("hour ")]
        where = ("after %s" % hours[-1]) if hours else "in the first hour"
        return False, {"why": "%s: %s" % (where, " | ".join(tail) or "exit %s" %
                                          proc.returncode)}


def _rel(path):
    return ":".join(os.path.relpath(p, ROOT) if p.startswith("/") else p
                    for p in path.split(":"))


class Bench:
    def __init__(self, args, rig, session, accounts, work):
        self.args, self.rig, self.session = args, rig, session
        self.accounts = list(accounts)
        self.work = work
        self.runs = 0

    async def month(self, build, cap, days):
        exe, needs_mpy, _ = BUILDS[build]
        exe = self.args.image or exe
        path = (os.path.join(self.work, "fw", "lib") + ":.frozen") if needs_mpy else ".frozen"
        self.runs += 1
        flash = os.path.join(self.work, "flash%03d" % self.runs)
        run = Month(self.rig, self.session, exe, path, cap, days * DAY_S, self.accounts.pop(0), flash,
                    self.args.pay_every_h)
        ok, figures = await run.run()
        self.last_lines = run.lines
        print("  %-6s cap %6d B, %2d days: %s" % (
            build, cap, days, "ok " + _brief(figures) if ok else "FAILED " + figures["why"]),
            flush=True)
        return ok, figures, run.shown

    async def one(self, build, cap, days):
        """One run at `cap`, its live heap printed at every virtual midnight (--at)."""
        ok, figures, shown = await self.month(build, cap, days)
        for line in self.last_lines:
            if line.startswith("up "):  # the live heap once connected, before the first tick
                print("    %s" % line)
            if line.startswith("hour ") and int(line.split()[1]) % 24 == 0:
                print("    day %3d: %s" % (int(line.split()[1]) // 24, line))
        print("    command: %s" % shown)
        return ok

    async def smallest(self, build):
        """Bisect the cap over --search-days, then hold it for --days."""
        step = self.args.step
        lo, hi = self.args.floor, BUILDS[build][2]
        ok, _, _ = await self.month(build, hi, self.args.search_days)
        if not ok:
            return None
        while hi - lo > step:
            mid = (lo + hi) // 2 // step * step
            ok, _, _ = await self.month(build, mid, self.args.search_days)
            lo, hi = (lo, mid) if ok else (mid, hi)
        cap = hi
        while True:
            ok, figures, shown = await self.month(build, cap, self.args.days)
            if ok:
                return cap, figures, shown
            cap += step


def _brief(f):
    return ("live %s (sim %s), peak %s, %s recharges, %s telemetry, %s connects, %s stalls, "
            "relay switched %s, %s JSON overflows" % (
                f["live"], f["sim"], f["peak"], f["recharges"], f["telemetry"], f["connects"],
                f["stalls"], f["relay_switches"], f.get("json_overflows", "?")))


def build_firmware(work):
    out = os.path.join(work, "fw")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_firmware.py"), "--out",
                    out], check=True, stdout=subprocess.DEVNULL)


async def run(args):
    builds = [b for b in args.builds.split(",") if b]
    if args.image and len(builds) != 1:
        sys.exit("--image replaces one build's image: name that build alone in --builds")
    for b in builds:
        exe = args.image or BUILDS[b][0]
        if not os.path.exists(exe):
            sys.exit("%s missing: python3 tools/build_micropython.py --bench" % exe)
    if not os.path.exists(MOSQUITTO):
        sys.exit("mosquitto not found (apt-get install mosquitto)")
    work = tempfile.mkdtemp(prefix="mita-bench-month-")
    build_firmware(work)
    accounts = await prepare_store(os.path.join(work, "mita.sqlite3"), 64)
    rig = Rig(work)
    rig.start()
    results = []
    try:
        async with aiohttp.ClientSession() as session:
            await rig.wait_ready(session, accounts)
            bench = Bench(args, rig, session, accounts[1:], work)
            if args.at:
                for build in builds:
                    await bench.one(build, args.at, args.days)
                return
            for build in builds:
                print("%s: smallest cap over %d days, then %d days at it" % (
                    build, args.search_days, args.days), flush=True)
                results.append((build, await bench.smallest(build)))
    finally:
        rig.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("whole meter with its cloud link, %d simulated days, 32-bit MicroPython v1.28.0:"
          % args.days)
    for build, found in results:
        if found is None:
            print("  %-6s fails even at %d B" % (build, BUILDS[build][2]))
            continue
        cap, f, shown = found
        firmware = cap - int(f["sim"])
        print("  %-6s smallest cap %6d B; the simulator's objects %s B of it, so the firmware's"
              " share %d B (%.1f KB); live at the end %s B, peak %s B" % (
                  build, cap, f["sim"], firmware, firmware / 1024, f["live"], f["peak"]))
        print("         %s" % _brief(f))
        print("         command: %s" % shown)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", default="frozen,plain")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--search-days", type=int, default=2)
    parser.add_argument("--step", type=int, default=2048)
    parser.add_argument("--floor", type=int, default=16 * 1024)
    parser.add_argument("--pay-every-h", type=int, default=2)
    parser.add_argument("--image", help="run this copy of the build's image instead (a saved "
                        "bench image: before/after figures while the tree is rebuilt)")
    parser.add_argument("--at", type=int, help="one run of --days at this cap (bytes), with "
                        "the live heap at every virtual midnight, instead of the search")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
