# The one seam between the firmware and the fake hardware. The firmware imports `machine`,
# `network`, `esp32`, `ntptime` and `micropython` as top-level modules, as on the device; off
# the device those come from simulator/hal. Every caller finds them here: CPython callers call
# install(), MicroPython processes get their MICROPYPATH from micropython_path(). Nothing else
# in the repository spells out where the fakes live.
import os
import sys

SIMULATOR_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SIMULATOR_DIR)
FIRMWARE_DIR = os.path.join(ROOT, "firmware")
FROZEN = ".frozen"  # the unix port's frozen modules (asyncio, ...); last on every MICROPYPATH


def fake_dirs(base=SIMULATOR_DIR):
    """Where a MicroPython process imports the fakes from, under `base` (simulator/ itself, or
    an .mpy build of it with the same layout): hal/ (machine, network, esp32, ntptime) and
    `base` (clock, world, sim_board, board_context, devices/ as top-level modules)."""
    return [os.path.join(base, "hal"), base]


def install(clock=None):
    """Under CPython: put the repository root, firmware/ and the fake MicroPython modules on
    sys.path (the fakes first, so they win), as MICROPYPATH does under the unix port; with
    `clock`, also make it the virtual clock behind time.ticks_ms and friends
    (simulator.clock.install). Idempotent. Returns `clock`."""
    for path in (ROOT, FIRMWARE_DIR, fake_dirs()[0]):
        if path not in sys.path:
            sys.path.insert(0, path)
    if clock is not None:
        from simulator.clock import install as install_clock
        install_clock(clock)
    return clock


def micropython_path(*first, fakes=True, base=SIMULATOR_DIR):
    """The MICROPYPATH entries for a micropython process: `first` (in order; what must shadow
    the rest, e.g. a firmware build's lib/), then the fakes (fake_dirs(base)) unless
    fakes=False, then the port's frozen modules."""
    return list(first) + (fake_dirs(base) if fakes else []) + [FROZEN]
