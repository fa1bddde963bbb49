"""One simulated meter joined to a mita cloud: the demo's meter (built in-process) and, run as a
script, a meter process for the end-to-end tests that prints its state as JSON lines.

    python tools/sim_meter.py --meter MITA0001 --password PW --broker-port 1883 \\
        --flash DIR [--speed 10] [--balance-cents 0] [--watts 1000] [--epoch-ms MS]

Each stdout line is one JSON object: {"state": {...}} when the meter's state changes (relay,
balance, credited total, alerts, online) or {"log": "..."} for a firmware log line. stdin takes
commands, one a line: `wifi off`, `wifi on`, `quit`.
"""
import argparse
import asyncio
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# KES 30 a kWh, no bands: easy sums for a demo (KES 1 a minute at 2 kW).
DEMO_TARIFF = {"version": 1, "bands": [{"rate": 3000}]}


def make_cloud_meter(clock, flash, meter_no, password, broker_port, balance_cents, watts,
                     low_cents=300, critical_cents=100, tariff=None):
    """A SimulatedMeter on a steady load, provisioned for the cloud's broker with its device
    credentials (meter id = canonical meter number, broker user = meter id)."""
    from urllib.parse import quote
    from simulator.scenario import Scenario
    scenario = Scenario({
        "name": "cloud meter", "start_balance_cents": balance_cents,
        "load": {"kind": "steady", "watts": watts}, "tariff": tariff or DEMO_TARIFF,
        "config": {"meter_id": meter_no,
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
    from simulator.clock import REAL, VirtualClock, install
    import time
    clock = install(VirtualClock(mode=REAL, speed=args.speed,
                                 epoch_ms=args.epoch_ms or int(time.time() * 1000)))
    os.makedirs(args.flash, exist_ok=True)
    meter = make_cloud_meter(clock, args.flash, args.meter, args.password, args.broker_port,
                             args.balance_cents, args.watts)
    _count_log_lines(meter)
    clock.run(_serve(meter, args.speed, heartbeat_s=0.05))
    return 1 if meter.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
