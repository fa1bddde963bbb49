# Bench-only `time` for the MicroPython unix port: the firmware's ticks_ms/sleep_ms follow the
# simulator's virtual clock (so a simulated day passes in seconds), while the port's real
# ticks_us stays reachable as real_ticks_us for timing. `time` is an extensible built-in, so this
# file on MICROPYPATH replaces it; the built-in is imported with the path emptied.
import sys

_path = sys.path
sys.path = []
try:
    from time import *  # noqa: F401,F403 - everything the port has, then the overrides below
    import time as _port
finally:
    sys.path = _path

real_ticks_us = _port.ticks_us
real_ticks_ms = _port.ticks_ms
_clock = [None]


def use(clock):
    """Follow `clock` (a simulator VirtualClock) from now on; None: the port's real ticks."""
    _clock[0] = clock


def ticks_ms():
    clock = _clock[0]
    return real_ticks_ms() if clock is None else clock.ticks_ms()


def sleep_ms(ms):
    # Blocking waits (LCD init, relay pulses) move virtual time, never wall time.
    clock = _clock[0]
    if clock is None:
        _port.sleep_ms(ms)
    else:
        clock.sleep_ms(ms)


def sleep_us(us):
    clock = _clock[0]
    if clock is None:
        _port.sleep_us(us)
    else:
        clock.sleep_ms(us / 1000)
