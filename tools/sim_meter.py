"""One simulated meter joined to a mita cloud: the demo's meter (built in-process) and, run as a
script, a meter process for the end-to-end tests that prints its state as JSON lines.

    python tools/sim_meter.py --meter MITA0001 --password PW --broker-port 1883 \\
        --flash DIR [--speed 10] [--balance-cents 0] [--watts 1000] [--epoch-ms MS]

MITA_DEVICE_KEY in the environment is the meter's device key (the cloud's commands are signed
from it; without it every command is refused).

Each stdout line is one JSON object: {"state": {...}} when the meter's state changes (relay,
balance, credited total, alerts, online) or {"log": "..."} for a firmware log line. stdin takes
commands, one a line: `wifi off`, `wifi on`, `quit`.
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import mita_procs  # noqa: E402  (beside this file, in tools/)

# KES 30 a kWh, no bands: easy sums for a demo (KES 1 a minute at 2 kW).
DEMO_TARIFF = {"version": 1, "bands": [{"rate": 3000}]}


def make_cloud_meter(clock, flash, meter_no, password, broker_port, balance_cents, watts,
                     low_cents=300, critical_cents=100, tariff=None, device_key=""):
    """A SimulatedMeter on a steady load, provisioned for the cloud's broker with its device
    credentials (meter id = canonical meter number, broker user = meter id, and the device
    key the cloud's commands are signed from)."""
    from urllib.parse import quote
    from simulator.scenario import Scenario
    scenario = Scenario({
        "name": "cloud meter", "start_balance_cents": balance_cents,
        "load": {"kind": "steady", "watts": watts}, "tariff": tariff or DEMO_TARIFF,
        "config": {"meter_id": meter_no, "key": device_key,
                   "thresholds": {"low_cents": low_cents, "critical_cents": critical_cents}}})
    url = "mqtt://%s:%s@127.0.0.1:%d" % (quote(meter_no), quote(password), broker_port)
    return scenario.make_meter(clock, flash, cloud_url=url)


def meter_state(meter):
    """What the tests and the demo look at: the meter's own view, never the cloud's."""
    st = meter.status()
    app = meter.app
    return {"running": st["running"], "relay_closed": st["relay_closed"],
            "balance_cents": st["balance_cents"],
            "credited_cents": app.ledger.total_credited if app is not None else None,
            "alerts": st["alerts"], "online": bool(app.snapshot.get("online")) if app else False,
            "lcd": st["lcd"], "t_s": round(meter.clock.now_ms() / 1000.0, 1),
            "epoch_ms": meter.clock.epoch_ms()}


def set_wifi(meter, up):
    now = meter.clock.now_ms()
    if up:
        meter.board.ap.restore(now)
    else:
        meter.board.ap.schedule_outage(now)
    meter.board.kick()


class Reporter:
    """Prints a state line when something a test could wait for changed, and new log lines."""

    def __init__(self, meter, out=sys.stdout):
        self.meter = meter
        self.out = out
        self.last = None
        self.logged = 0

    def poll(self):
        state = meter_state(self.meter)
        key = {k: v for k, v in state.items() if k not in ("t_s", "epoch_ms", "lcd")}
        if key != self.last:
            self.last = key
            self._emit({"state": state})
        log = list(self.meter.log)
        total = self.meter.log_total
        for _, line in log[max(0, len(log) - (total - self.logged)):]:
            self._emit({"log": line})
        self.logged = total

    def _emit(self, obj):
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()


def _count_log_lines(meter):
    """meter.log is a bounded deque: count lines as they come to know which are new."""
    meter.log_total = 0
    original = meter.log_line

    def counted(line):
        original(line)
        meter.log_total += 1
    meter.log_line = counted


async def _serve(meter, speed, heartbeat_s):
    loop = asyncio.get_running_loop()
    reporter = Reporter(meter)
    commands = asyncio.Queue()

    def readable():
        line = sys.stdin.readline()
        commands.put_nowait(line.strip() if line else "quit")
    loop.add_reader(sys.stdin.fileno(), readable)
    meter.start(loop)
    try:
        while True:
            reporter.poll()
            try:
                # virtual seconds: heartbeat_s of wall time at this speed
                command = await asyncio.wait_for(commands.get(), heartbeat_s * speed)
            except asyncio.TimeoutError:
                continue
            if command == "quit":
                break
            if command in ("wifi off", "wifi on"):
                set_wifi(meter, command == "wifi on")
    finally:
        loop.remove_reader(sys.stdin.fileno())
        reporter.poll()
        meter.stop()


class MeterProcess:
    """A simulated meter (tools/sim_meter.py) in its own process, joined to a cloud's broker
    with its registration's credentials. Its flash folder outlives the process, so stopping
    and starting it again is a meter switched off and back on."""

    def __init__(self, folder, registration, broker_port, speed=10.0, balance_cents=0,
                 watts=1000):
        self.meter_no = registration["meter_no"]
        self.flash = os.path.join(folder, "flash-" + self.meter_no)
        self.log_path = os.path.join(folder, "meter-%s.log" % self.meter_no)
        self.base_argv = [sys.executable, os.path.abspath(__file__),
                          "--meter", self.meter_no, "--password",
                          registration["mqtt_password"], "--broker-port", str(broker_port),
                          "--flash", self.flash, "--speed", str(speed),
                          "--balance-cents", str(balance_cents), "--watts", str(watts)]
        # the key in the environment, not on the command line every `ps` shows
        self.env = {"MITA_DEVICE_KEY": registration["device_key"]}
        self.proc = None
        self.state = {}
        self.logs = []
        self._lock = threading.Lock()

    def start(self, epoch_ms=None, timeout_s=30, online=True):
        argv = list(self.base_argv)
        if epoch_ms is not None:
            argv += ["--epoch-ms", str(int(epoch_ms))]
        self.proc = mita_procs.Proc("meter " + self.meter_no, argv, self.log_path,
                                    env=self.env, pipe=True).start()
        self.state = {}
        threading.Thread(target=self._read, args=(self.proc.proc.stdout,), daemon=True).start()
        if online:
            self.wait(lambda s: s.get("online"), timeout_s, "meter %s online" % self.meter_no)
        return self

    def _read(self, stream):
        for raw in stream:
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            with self._lock:
                if "state" in item:
                    self.state = item["state"]
                elif "log" in item:
                    self.logs.append(item["log"])

    def wait(self, predicate, timeout_s, what):
        def check():
            if self.proc is None or not self.proc.alive:
                raise mita_procs.StackError(
                    "meter %s is not running while waiting for %s; its log:\n%s" % (
                        self.meter_no, what, self.proc.log_tail() if self.proc else ""))
            with self._lock:
                return predicate(dict(self.state))
        try:
            mita_procs.wait_until(check, timeout_s, what)
        except mita_procs.StackError as error:
            raise mita_procs.StackError("%s; meter state %s; last firmware lines: %s" % (
                error, self.state, self.logs[-8:])) from None
        return dict(self.state)

    def command(self, text):
        self.proc.proc.stdin.write((text + "\n").encode())
        self.proc.proc.stdin.flush()

    def stop(self, kill=False):
        """Switch the meter off: SIGKILL is a power cut, otherwise `quit` lets it finish."""
        if self.proc is None:
            return
        if not kill and self.proc.alive:
            try:
                self.command("quit")
                self.proc.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.proc.stop(kill=kill)
        self.proc = None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python tools/sim_meter.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meter", required=True, help="the canonical meter number")
    parser.add_argument("--password", required=True, help="the meter's broker password")
    parser.add_argument("--broker-port", type=int, required=True)
    parser.add_argument("--flash", required=True, help="flash folder (kept across runs)")
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--balance-cents", type=int, default=0, help="opening balance")
    parser.add_argument("--watts", type=int, default=1000)
    parser.add_argument("--epoch-ms", type=int, help="wall-clock time at start (default: now)")
    args = parser.parse_args(argv)
    from simulator import install  # the one seam: paths and the virtual clock
    from simulator.clock import REAL, VirtualClock
    import time
    clock = install(VirtualClock(mode=REAL, speed=args.speed,
                                 epoch_ms=args.epoch_ms or int(time.time() * 1000)))
    os.makedirs(args.flash, exist_ok=True)
    meter = make_cloud_meter(clock, args.flash, args.meter, args.password, args.broker_port,
                             args.balance_cents, args.watts,
                             device_key=os.environ.get("MITA_DEVICE_KEY", ""))
    _count_log_lines(meter)
    clock.run(_serve(meter, args.speed, heartbeat_s=0.05))
    return 1 if meter.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
