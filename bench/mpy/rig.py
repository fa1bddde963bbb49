# The bench's simulated meter under the MicroPython unix port: virtual clock, a seeded household,
# the simulator's board (PZEM emulator on the UART, HD44780 decoder on I2C, relay pin, flash
# folder as the state root) and the firmware started by its own boot module on top of them.
import gc
import json
import os

import time  # bench/mpy/time.py: virtual ticks for the firmware, real_ticks_us for us
from clock import DEFAULT_EPOCH_MS, VirtualClock
from world import DAY_MS, World, Household
from sim_board import SimBoard
import board_context
import machine  # noqa: F401 - the simulator's; loaded here so it counts as the simulator's heap

# Kenya-like tariff: lifeline bands, a night discount, pass-through charges, levies and VAT, so a
# tick bills through every part of the tariff engine rather than a flat rate.
TARIFF = {"version": 3, "effective_from": 1767225600, "utc_offset_min": 180,
          "bands": [{"upto_kwh": 30, "rate": 1223}, {"upto_kwh": 100, "rate": 1650},
                    {"rate": 1950}],
          "tou": [{"from": "22:00", "to": "06:00", "factor_bp": 7000}],
          "passthrough": [{"name": "fuel", "rate": 367}, {"name": "forex", "rate": 133}],
          "levies": [{"name": "erc", "rate": 8}, {"name": "wra", "rate": 5}],
          "percent_levies": [{"name": "rep", "bp": 500}],
          "vat_bp": 1600}


class BenchError(Exception):
    pass


class TwoDayHousehold(Household):
    """The seeded household, its first two days repeated: the simulator builds a day's load
    curve (a 1-2 KB block) at each local midnight, which a real board never does; built once
    before the firmware boots, a month-long run under a heap cap measures the firmware's
    allocations, not the simulator's (a 30-day run at 88 KB failed in that rebuild)."""

    def __init__(self, first_day, seed=1):
        Household.__init__(self, seed=seed)
        self.first_day = first_day
        self._two = [Household.day(self, first_day), Household.day(self, first_day + 1)]

    def day(self, day_index):
        return self._two[(day_index - self.first_day) % 2]


def heap():
    gc.collect()
    return gc.mem_alloc()


def make_board(flash_dir, balance_cents, seed=1, start_hour=3, meter_id="BENCH-1", extra=None):
    """Clock, world and board, with /config.json written on the simulated flash (`extra`: more
    config sections, e.g. the cloud link's). The clock starts on 2026-01-01 at start_hour, local
    time (UTC+3)."""
    clock = VirtualClock(epoch_ms=DEFAULT_EPOCH_MS + (start_hour - 3) * 3600000)
    time.use(clock)
    world = World(clock, None, seed=seed)
    first_day = (clock.epoch_ms() + world.utc_offset_ms) // DAY_MS
    world.load = TwoDayHousehold(first_day, seed=seed)
    board = SimBoard(world, flash_dir, clock, rig={"rtc_battery": True}, meter_id=meter_id,
                     seed=seed)
    board_context.set_default(board)
    config = {"meter_id": meter_id, "initial_balance_cents": balance_cents, "tariff": TARIFF}
    if extra:
        config.update(extra)
    with open(flash_dir + "/config.json", "w") as f:
        json.dump(config, f)
    return clock, world, board


class LogCounter:
    """The firmware logger's sink: counts the lines instead of printing them (a device prints
    to its UART; here output would swamp the figures), keeping the last one for a failure."""

    def __init__(self):
        self.lines = 0
        self.last = ""

    def __call__(self, line):
        self.lines += 1
        self.last = line


def _frozen(path):
    """Frozen into the image (a 32-bit build from make micropython): its __file__ names the
    manifest path, which is no file on the filesystem."""
    import os
    try:
        os.stat(path)
        return False
    except OSError:
        return True


def start(flash_dir, sink):
    from meter import boot
    from meter.log import Logger
    if not (boot.__file__.endswith(".mpy") or _frozen(boot.__file__)):
        raise BenchError("firmware loaded from %s, not from .mpy files" % boot.__file__)
    return boot.start(flash_dir, log=Logger("mita", sink=sink))


def step(clock, board, app):
    """One simulated second: the world and hardware move on, then the firmware's tick."""
    clock.advance(1000)
    board.poll()
    app.tick()
    # The LCD decoder keeps every command byte for tests, without bound: emptied here so a
    # long run measures the firmware, not the simulator's recorder.
    board.lcd.commands.clear()
    # So does the fake buzzer, every beep (a recharge, a low balance, a relay switch): about
    # 190 B a day with the link running, which a month counted as the firmware's growth. Only
    # the last beep is kept (its off time may still be to come).
    beeps = board.buzzer.beeps
    if len(beeps) > 1:
        del beeps[:-1]


def recharge(app, n, cents):
    return app.apply_recharge({"id": "BENCH%05d" % n, "seq": n, "amount_cents": cents,
                               "source": "cloud"})


def clean(flash_dir):
    try:
        for name in os.listdir(flash_dir):
            os.remove(flash_dir + "/" + name)
    except OSError:
        pass
