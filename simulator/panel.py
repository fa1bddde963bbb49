# The live terminal panel of one simulated meter (rich): the LCD's two lines, relay, balance,
# power, kWh, alerts and the last events, with keys read in cbreak mode from the event loop:
# + / - load, p power cut/restore, w WiFi drop/restore, r recharge, q quit; digits, # and *
# press the meter's keypad (a scenario wiring it, e.g. scenarios/keypad-tokens.yaml).
import os
import sys

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

LOAD_STEP_W = 250
RECHARGE_CENTS = 10000  # KES 100 per press of r
HELP = ("+/- load {step} W   p power cut/restore   w WiFi drop/restore   r recharge KES {kes}"
        "   0-9 # * keypad   q quit")


class PanelError(Exception):
    pass


def _money(cents):
    if cents is None:
        return "--"
    sign = "-" if cents < 0 else ""
    return "KES %s%d.%02d" % (sign, abs(cents) // 100, abs(cents) % 100)


def render(meter, speed_text="", extra_w=0):
    """The panel as a rich renderable, from meter.status() alone (no terminal needed)."""
    st = meter.status()
    lcd = Text("\n".join("|" + (line or "").ljust(16) + "|" for line in st["lcd"]),
               style="bold green on black")
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="cyan")
    table.add_column()
    mains = "on" if st["powered"] else "OFF (power cut)"
    table.add_row("meter", "%s   %s" % (st["meter_id"], speed_text))
    table.add_row("mains", mains)
    table.add_row("wifi", "up" if meter.board.ap.up(meter.clock.now_ms()) else "DOWN")
    table.add_row("relay", "closed (load on)" if st["relay_closed"] else "OPEN (load off)")
    table.add_row("balance", _money(st["balance_cents"]))
    power = st["power_w"]
    table.add_row("power", "--" if power is None else "%d W" % power)
    table.add_row("energy", "--" if st["energy_wh"] is None else "%.3f kWh" % (
        st["energy_wh"] / 1000.0))
    table.add_row("true energy", "%.3f kWh" % (st["true_wh"] / 1000.0))
    table.add_row("extra load", "%d W" % extra_w)
    table.add_row("alerts", ", ".join(st["alerts"]) or "none")
    table.add_row("boots", str(st["boots"]))
    events = Text("\n".join(st["events"][-6:]) or "(none yet)")
    help_text = Text(HELP.format(step=LOAD_STEP_W, kes=RECHARGE_CENTS // 100), style="dim")
    return Panel(Group(lcd, Text(""), table, Text("last events:", style="cyan"), events,
                       Text(""), help_text), title="mita simulator", border_style="blue")


class Keys:
    """Single key presses from a terminal in cbreak mode, delivered by the event loop's reader
    (never a blocking read). Use as a context manager; the terminal is restored on exit."""

    def __init__(self, loop, on_key, stream=None):
        self.loop = loop
        self.on_key = on_key
        self.stream = stream or sys.stdin
        self._saved = None

    def __enter__(self):
        import termios
        import tty
        fd = self.stream.fileno()
        if not os.isatty(fd):
            raise PanelError("the panel needs a terminal on stdin (use --no-panel)")
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self.loop.add_reader(fd, self._readable)
        return self

    def _readable(self):
        data = os.read(self.stream.fileno(), 32)
        for ch in data.decode(errors="ignore"):
            self.on_key(ch)

    def __exit__(self, *exc):
        import termios
        fd = self.stream.fileno()
        self.loop.remove_reader(fd)
        if self._saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)
        return False


class Controls:
    """What each key does to the meter and its world; a panel and tests share it."""

    def __init__(self, meter):
        self.meter = meter
        self.extra_w = 0
        self.quit = False
        self.last = ""

    def key(self, ch):
        meter = self.meter
        world = meter.world
        now = meter.clock.now_ms()
        if ch in "+=":
            self.extra_w += LOAD_STEP_W
            world.set_extra_load(self.extra_w)
        elif ch in "-_":
            self.extra_w = max(0, self.extra_w - LOAD_STEP_W)
            world.set_extra_load(self.extra_w)
        elif ch in "pP":
            if world.mains_on():
                world.cut_power()
            else:
                world.restore_power()
            meter.board.poll()  # the board sees the mains change at once
        elif ch in "wW":
            ap = meter.board.ap
            if ap.up(now):
                ap.schedule_outage(now)
            else:
                ap.restore(now)
        elif ch in "rR":
            meter.send_recharge(RECHARGE_CENTS)
        elif ch in "0123456789#*":
            meter.press_key(ch)  # the firmware's token panel reads it from the key matrix
        elif ch in "qQ":
            self.quit = True
        else:
            return False
        self.last = ch
        meter.board.kick()
        return True


async def run_panel(meter, seconds, speed_text="", refresh_s=0.25):
    """Show the panel until q or `seconds` of virtual time (None: until q)."""
    import asyncio
    from rich.live import Live
    loop = asyncio.get_running_loop()
    controls = Controls(meter)
    start = meter.clock.now_ms()
    with Keys(loop, controls.key), Live(render(meter, speed_text), auto_refresh=False,
                                        screen=False) as live:
        while not controls.quit:
            if seconds is not None and meter.clock.now_ms() - start >= seconds * 1000:
                break
            await asyncio.sleep(refresh_s * _speed(meter.clock))
            live.update(render(meter, speed_text, controls.extra_w), refresh=True)
    return controls


def _speed(clock):
    # The sleep is in virtual seconds: at N times real time a refresh of refresh_s wall
    # seconds is N times longer on the virtual clock.
    return clock.speed if clock.mode == "real" else 1
