"""`make demo`: the whole mita story on a laptop. Starts the cloud with its embedded defaults
(SQLite in a temporary folder, the in-process MQTT broker, the local Daraja stand-in) as a
child process on free ports, registers a customer and a meter through the API, and runs the
real firmware on a simulated meter at accelerated time: the balance drains, the low-balance
alert shows, the relay opens at zero, an M-Pesa STK push pays and the relay closes again.

    python tools/demo.py [--speed 30] [--no-panel]      the demo (live panel in a terminal)
    python tools/demo.py paybill --daraja URL --account "mita 0001" --kes 20
    python tools/demo.py join --cloud URL --operator-key KEY --broker-port N   (a 2nd meter)

With stdout not a terminal it runs the same walk as a plain log and exits 0 only if the meter
came back on after the payment. Ctrl-C stops everything; no process is left behind.
"""
import argparse
import asyncio
import atexit
import os
import random
import shutil
import signal
import sys
import tempfile
import time

import mita_procs
from demo_walk import Walk, WalkFailed, money, run_panel, run_plain
from sim_meter import make_cloud_meter

DEMO_METER = "MITA 0001"      # as a person would write it; the cloud keeps MITA0001
START_BALANCE_CENTS = 600     # KES 6 at 2 kW and KES 30/kWh: 6 minutes of meter time
LOAD_W = 2000
LOW_CENTS, CRITICAL_CENTS = 300, 100
PLAIN_BUDGET_S = 85           # the whole plain demo, cloud start included, under 90 s wall
CLOUD_START_S = 30


def say(text=""):
    print(text, flush=True)


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through every finally: children stopped there


def install_cleanup(folder):
    """Whatever way we leave (end, Ctrl-C, SIGTERM, SIGHUP, an error), stop the children and
    remove the temporary folder. Children also get SIGTERM if we are killed outright (see
    mita_procs._die_with_parent)."""
    def cleanup():
        mita_procs.stop_all()
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    atexit.register(cleanup)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    return cleanup


def dashboard_text(url, customer_key, operator_key):
    """Where to watch the walk live in a browser, and the keys to sign in with."""
    return "\n".join([
        "dashboard: %s/  (open it now: the balance, the relay and the payment move live)" % url,
        "  sign in as the customer with API key  %s" % customer_key,
        "  sign in as the operator with key      %s" % operator_key])


def try_more_text(api_url, registration, broker_port, daraja_url, operator_key):
    py = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) \
        else sys.executable
    key = registration["api_key"]
    meter_no = registration["meter_no"]
    lines = [
        "Try more, in another terminal while the demo runs:",
        "  the API (as the customer):",
        "    curl -s -H 'Authorization: Bearer %s' %s/api/meters/%s" % (key, api_url,
                                                                       meter_no),
        "    curl -s -H 'Authorization: Bearer %s' %s/api/transactions/meter/%s" % (
            key, api_url, meter_no),
        "    curl -s -X POST -H 'Authorization: Bearer %s' -H 'Content-Type: application/json'"
        " -d '{\"meter_no\": \"%s\", \"phone\": \"0712345678\", \"amount\": 20}' "
        "%s/api/payments/stkpush" % (key, meter_no, api_url),
    ]
    if daraja_url:
        lines += ["  pay by paybill (C2B), the account number typed any way:",
                  "    %s tools/demo.py paybill --daraja %s --account '%s' --kes 20" % (
                      py, daraja_url, meter_no.lower()[:4] + " " + meter_no.lower()[4:])]
    lines += ["  a second meter on the same cloud, with its own panel:",
              "    %s tools/demo.py join --cloud %s --operator-key %s --broker-port %d" % (
                  py, api_url, operator_key, broker_port),
              "  the docs: docs/cloud.md (API), docs/simulator.md, docs/operations.md"]
    return "\n".join(lines)


def run_meter(api, registration, broker_port, folder, speed, panel, scripted, extra_help,
              deadline_s=PLAIN_BUDGET_S):
    """One simulated meter on this cloud through the walk; True if it came back on after a
    payment within deadline_s without a panel (always True with one: the person watching
    decides)."""
    from simulator import install  # the one seam: paths and the virtual clock
    from simulator.clock import REAL, VirtualClock
    clock = install(VirtualClock(mode=REAL, speed=speed, epoch_ms=int(time.time() * 1000)))
    flash = os.path.join(folder, "flash-" + registration["meter_no"])
    os.makedirs(flash, exist_ok=True)
    meter = make_cloud_meter(clock, flash, registration["meter_no"],
                             registration["mqtt_password"], broker_port, START_BALANCE_CENTS,
                             LOAD_W, LOW_CENTS, CRITICAL_CENTS,
                             device_key=registration["device_key"])
    say("meter config written to %s (meter id, broker user = meter id, broker password "
        "from the device key)" % meter.board.flash.path("config.json"))
    say("meter %s: %s at %d W, KES 30/kWh, at x%g time; low-balance alert under %s"
        % (registration["meter_no"], money(START_BALANCE_CENTS), LOAD_W, speed,
           money(LOW_CENTS)))
    walk = Walk(meter, api, registration, speed, out=None if panel else say, scripted=scripted)

    async def go():
        meter.start(asyncio.get_running_loop())
        try:
            if panel:
                await run_panel(walk, extra_help)
            else:
                await run_plain(walk, deadline_s)
        finally:
            meter.stop()

    try:
        clock.run(go())
    except WalkFailed as error:
        say("FAILED: %s" % error)
        say("meter state: %s" % {k: v for k, v in walk.last.items() if k != "lcd"})
        say("the firmware's last lines:\n  " + "\n  ".join(t for _, t in list(meter.log)[-10:]))
        return False
    finally:
        if panel:
            say("\nwhat happened:\n" + "\n".join(walk.lines))
    return walk.back_on or panel


def demo(args):
    panel = sys.stdout.isatty() and sys.stdin.isatty() and not args.no_panel
    folder = tempfile.mkdtemp(prefix="mita-demo-")
    install_cleanup(folder)
    started = time.monotonic()
    say("mita demo: a prepaid meter, an M-Pesa payment, the lights back on")
    say("starting the cloud (SQLite in %s, in-process MQTT broker, local Daraja stand-in)..."
        % folder)
    cloud = mita_procs.CloudProcess(folder)
    try:
        cloud.start(timeout_s=CLOUD_START_S)
        say("cloud up on %s (broker on 127.0.0.1:%d, Daraja stand-in on %s)"
            % (cloud.url, cloud.broker_port, cloud.daraja_url))
        registration = cloud.customer_with_meter(DEMO_METER)
        say("registered customer %s and meter %r as %s through the API (POST /api/users, "
            "POST /api/meters); its device key was shown once" % (
                registration["user_id"][:8], DEMO_METER, registration["meter_no"]))
        say(dashboard_text(cloud.url, registration["api_key"], cloud.operator_key))
        more = try_more_text(cloud.url, registration, cloud.broker_port, cloud.daraja_url,
                             cloud.operator_key)
        if panel:
            say(more + "\n")
        ok = run_meter(cloud, registration, cloud.broker_port, folder, args.speed, panel,
                       scripted=True, extra_help="more: see the commands above",
                       deadline_s=max(2.0, args.budget - (time.monotonic() - started)))
    finally:
        cloud.stop()
    took = time.monotonic() - started
    if not ok:
        say("the demo did not see the meter come back on after the payment (%.1f s)" % took)
        return 1
    if not panel:
        say("OK: the relay reopened after the payment; %.1f s in all" % took)
        say("\nThe demo has stopped; run `make demo` in a terminal and it keeps running (with a "
            "live panel, until q) for these:")
        say(more.split("\n", 1)[1])
    say("everything is stopped. `make cloud` runs the cloud alone; docs/ has the rest.")
    return 0


def join(args):
    """A second meter, on a cloud another demo runs: register it, then the same walk."""
    panel = sys.stdout.isatty() and sys.stdin.isatty() and not args.no_panel
    folder = tempfile.mkdtemp(prefix="mita-meter-")
    install_cleanup(folder)
    api = mita_procs.CloudApi(args.cloud.rstrip("/"), args.operator_key)
    registration = api.customer_with_meter(args.meter or "MITA %04d" % random.randrange(10000),
                                           name="Second Customer", phone="0722000111")
    say("registered meter %s" % registration["meter_no"])
    ok = run_meter(api, registration, args.broker_port, folder, args.speed, panel,
                   scripted=not panel, extra_help="")
    return 0 if ok else 1


def paybill(args):
    reply = mita_procs.paybill(args.daraja.rstrip("/"), args.account, args.kes)
    say("paybill %s, account %r, KES %d: %s" % (mita_procs.PAYBILL, args.account, args.kes,
                                                reply.get("ResponseDescription", reply)))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python tools/demo.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", type=float, default=30.0, help="meter time x real time")
    parser.add_argument("--no-panel", action="store_true", help="a plain log, no panel")
    parser.add_argument("--budget", type=float, default=PLAIN_BUDGET_S,
                        help="without a panel: seconds for the meter to be back on after a "
                        "payment, cloud start included, else exit 1 (default %(default)s)")
    sub = parser.add_subparsers(dest="command")
    pay = sub.add_parser("paybill", help="pay a meter through the stand-in's paybill (C2B)")
    pay.add_argument("--daraja", required=True, help="the Daraja stand-in's URL")
    pay.add_argument("--account", required=True, help="the meter number, typed any way")
    pay.add_argument("--kes", type=int, default=20)
    second = sub.add_parser("join", help="a second meter on a running demo's cloud")
    second.add_argument("--cloud", required=True, help="the cloud's URL")
    second.add_argument("--operator-key", required=True)
    second.add_argument("--broker-port", type=int, required=True)
    second.add_argument("--meter", help="its meter number (default: a random MITA ####)")
    second.add_argument("--speed", type=float, default=30.0)
    second.add_argument("--no-panel", action="store_true")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "paybill":
            return paybill(args)
        if args.command == "join":
            return join(args)
        return demo(args)
    except mita_procs.StackError as error:
        say("error: %s" % error)
        return 1
    except KeyboardInterrupt:
        say("\nstopped (Ctrl-C); every process of the demo is stopped.")
        return 130
    finally:
        mita_procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
