# `python -m simulator run|fleet`: one meter with a live panel (or headless with a summary),
# or a fleet with a progress bar and a summary table of true energy against billed.
import argparse
import asyncio
import shutil
import sys
import tempfile

from rich.markup import escape

from simulator.clock import FAST, REAL, VirtualClock
from simulator.scenario import Scenario, ScenarioError
from simulator.meter import MeterError, cloud_config
from simulator.seam import install  # the one seam: paths and the virtual clock

DEFAULT_SCENARIO = {"name": "household", "start_balance_kes": 500, "load": {"kind": "household"},
                    "duration": "1d"}


def _speed(text):
    if text in ("max", "fast"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("speed is a number (times real time) or 'max'")
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be positive")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m simulator",
                                     description="Run the mita firmware on simulated meters.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="one meter, with a live panel")
    run.add_argument("--scenario", help="a scenario file (YAML or JSON); see scenarios/")
    run.add_argument("--speed", type=_speed, default=1.0,
                     help="times real time (default 1), or 'max' to fast-forward (headless)")
    run.add_argument("--seconds", type=float, help="virtual seconds to run (default: scenario)")
    run.add_argument("--no-panel", action="store_true", help="headless: print a summary")
    run.add_argument("--flash", help="the meter's flash folder (default: a temporary one)")
    run.add_argument("--cloud", metavar="URL",
                     help="the cloud's MQTT broker, mqtt://[user:password@]host[:port]")
    fleet = sub.add_parser("fleet", help="many meters, a progress bar and a summary table")
    fleet.add_argument("--meters", type=int, default=10)
    fleet.add_argument("--days", type=float, default=1.0)
    fleet.add_argument("--speed", type=_speed, default=None,
                       help="times real time, or 'max' (default) to fast-forward")
    fleet.add_argument("--sensor", choices=("pzem", "s0"), default="pzem")
    fleet.add_argument("--workers", type=int, default=1, help="worker processes (one per core)")
    fleet.add_argument("--seed", type=int, default=1)
    fleet.add_argument("--rows", type=int, default=20, help="meters listed in the table")
    fleet.add_argument("--cloud", metavar="URL",
                       help="the cloud's MQTT broker, mqtt://[user:password@]host[:port]")
    return parser


def check_cloud(args):
    """--cloud talks to a real broker over real sockets: only with a real-time clock."""
    if args.cloud:
        cloud_config(args.cloud)  # a bad URL is a MeterError now, not in every meter later
        if args.speed is None:
            raise MeterError("--cloud needs a real-time clock: give --speed N (1 = real time)")


def main(argv=None, console=None):
    from rich.console import Console
    args = build_parser().parse_args(argv)
    if console is None:
        console = Console()
        if not console.is_terminal and console.width < 120:
            console = Console(width=120)  # a log file has room for the whole summary table
    try:
        check_cloud(args)
        if args.command == "run":
            return cmd_run(args, console)
        return cmd_fleet(args, console)
    except (ScenarioError, MeterError) as exc:
        console.print("[red]error:[/red] %s" % escape(str(exc)))
        return 2


# --- run -----------------------------------------------------------------------------------

def cmd_run(args, console):
    scenario = Scenario.from_file(args.scenario) if args.scenario else Scenario(DEFAULT_SCENARIO)
    if args.speed is None and not args.no_panel:
        console.print("[red]error:[/red] --speed max runs headless: add --no-panel")
        return 2
    seconds = args.seconds if args.seconds is not None else scenario.duration_ms / 1000.0
    clock = install(VirtualClock(mode=FAST if args.speed is None else REAL,
                                 speed=args.speed or 1))
    flash = args.flash or tempfile.mkdtemp(prefix="mita-meter-")
    meter = scenario.make_meter(clock, flash, cloud_url=args.cloud)
    speed_text = "fast-forward" if args.speed is None else "x%g" % args.speed

    async def go():
        loop = asyncio.get_running_loop()
        meter.start(loop)
        scenario.apply(meter, loop)
        try:
            if args.no_panel:
                await asyncio.sleep(seconds)
            else:
                from simulator.panel import run_panel
                await run_panel(meter, seconds, speed_text)
        finally:
            meter.stop()

    try:
        clock.run(go())
    finally:
        if not args.flash:
            shutil.rmtree(flash, ignore_errors=True)
    print_meter_summary(console, meter, scenario, clock)
    return 1 if meter.crashes else 0


def print_meter_summary(console, meter, scenario, clock):
    from rich.table import Table
    from simulator.meter import meter_summary
    row = meter_summary(meter)
    st = meter.status()
    table = Table(title="%s: %s after %.0f virtual s" % (meter.meter_id, scenario.name,
                                                         clock.now_ms() / 1000.0))
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name, value in (("true energy (Wh)", row["true_wh"]), ("billed (Wh)", row["billed_wh"]),
                        ("billed (KES)", "%.2f" % (row["billed_cents"] / 100.0)),
                        ("balance (KES)", "--" if row["balance_cents"] is None
                         else "%.2f" % (row["balance_cents"] / 100.0)),
                        ("disconnections", row["disconnections"]),
                        ("sensor read failures", row["sensor_failures"]),
                        ("boots", row["boots"]), ("crashes", row["crashes"]),
                        ("LCD", " / ".join(st["lcd"]))):
        table.add_row(name, str(value))
    console.print(table)
    for t_ms, text in list(meter.log)[-5:]:
        console.print("[dim]%9.1fs[/dim] %s" % (t_ms / 1000.0, text))
    for t_ms, text in meter.crashes:
        console.print("[red]crash at %.1fs: %s[/red]" % (t_ms / 1000.0, text))


# --- fleet ---------------------------------------------------------------------------------

def cmd_fleet(args, console):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from simulator.fleet import run_fleet
    if args.meters < 1 or args.days <= 0:
        console.print("[red]error:[/red] --meters must be >= 1 and --days > 0")
        return 2
    seconds = args.days * 86400.0
    total = args.meters * seconds
    with Progress(TextColumn("[bold]fleet"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("fleet", total=total, rate="")
        state = {"t0": None}

        def progress(done):
            import time
            now = time.perf_counter()
            if state["t0"] is None:
                state["t0"] = now
            rate = done / max(now - state["t0"], 1e-6)
            bar.update(task, completed=min(done, total), rate="%.0f meter-s/s" % rate)

        rows, wall = run_fleet(args.meters, seconds, speed=args.speed, sensor=args.sensor,
                               workers=args.workers, seed=args.seed, cloud_url=args.cloud,
                               progress=progress)
        bar.update(task, completed=total)
    print_fleet_summary(console, rows, wall, seconds, args.rows)
    return 1 if any(r["crashes"] for r in rows) else 0


def print_fleet_summary(console, rows, wall, seconds, max_rows=20):
    from rich.table import Table
    from simulator.fleet import totals
    table = Table(title="fleet summary: %d meters, %.2f virtual days" % (len(rows),
                                                                         seconds / 86400.0))
    table.add_column("meter", no_wrap=True, min_width=8)
    for name in ("true kWh", "billed kWh", "error %", "billed KES", "balance KES", "cut-offs",
                 "sensor faults", "boots"):
        table.add_column(name, justify="right")
    for r in rows[:max_rows]:
        table.add_row(r["meter_id"], "%.3f" % (r["true_wh"] / 1000.0),
                      "%.3f" % (r["billed_wh"] / 1000.0), _pct(r["billed_wh"], r["true_wh"]),
                      "%.2f" % (r["billed_cents"] / 100.0),
                      "--" if r["balance_cents"] is None else "%.2f" % (r["balance_cents"] / 100.0),
                      str(r["disconnections"]), str(r["sensor_failures"]), str(r["boots"]))
    t = totals(rows)
    if len(rows) > max_rows:
        table.add_row("(%d more)" % (len(rows) - max_rows), "", "", "", "", "", "", "", "")
    table.add_row("TOTAL", "%.3f" % (t["true_wh"] / 1000.0), "%.3f" % (t["billed_wh"] / 1000.0),
                  "%.3f" % t["error_pct"], "%.2f" % (t["billed_cents"] / 100.0),
                  "%.2f" % (t["balance_cents"] / 100.0), str(t["disconnections"]),
                  str(t["sensor_failures"]), "", style="bold")
    console.print(table)
    meter_seconds = len(rows) * seconds
    console.print("%.0f meter-seconds in %.2f s wall: %.0f meter-seconds/s" % (
        meter_seconds, wall, meter_seconds / max(wall, 1e-9)))


def _pct(billed, true):
    if not true:
        return "--"
    return "%.3f" % (100.0 * (billed - true) / true)


if __name__ == "__main__":
    sys.exit(main())
