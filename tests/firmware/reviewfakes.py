# Fakes for the review tests of the whole tick path (test_app_review.py, test_app_torn.py):
# a UART with a byte-accurate PZEM-004T behind it, clocks whose ticks wrap as on the ESP32 or
# that run the firmware's own Clock on a fake RTC, and a board of them. Both interpreters.
import struct

from meter import config as meter_config
from meter.app import MeterApp
from meter.calendar import epoch, local_parts
from meter.clock import Clock
from meter.drivers.modbus import with_crc
from meter.drivers.pzem004t import Pzem004t
from meter.drivers.relay import Relay
from meter.storage import StateStore
from support import FakePin

T0 = 1767225600  # 2026-01-01 00:00 UTC
_WRAP = 1 << 30  # the ESP32's ticks_ms period


class PzemLine:
    """The UART to a byte-accurate PZEM-004T: each read request is answered from a counter
    that integrates `power_w` over the clock's ticks while the relay is closed. `fault` makes
    the next answers silent, corrupt or a Modbus exception."""

    def __init__(self, clock, relay_box, counter=0):
        self.clock = clock
        self.relay_box = relay_box  # [relay], filled once the board exists
        self.counter = counter
        self.power_w = 0
        self.fault = None
        self.requests = 0
        self._w_ms = 0
        self._last = clock.ticks_ms()
        self._rx = b""

    def _integrate(self):
        now = self.clock.ticks_ms()
        relay = self.relay_box[0] if self.relay_box else None
        power = self.power_w if relay is None or relay.is_closed() else 0
        self._w_ms += power * self.clock.ticks_diff(now, self._last)
        self._last = now
        wh = self._w_ms // 3600000
        self._w_ms -= wh * 3600000
        self.counter += wh
        return power

    def write(self, buf):
        self.requests += 1
        power = self._integrate()
        if self.fault == "silent":
            return len(buf)
        if self.fault == "exception":
            self._rx += with_crc(bytes((buf[0], 0x84, 0x04)))
            return len(buf)
        dw = power * 10
        regs = (2300, 0, 0, dw & 0xFFFF, dw >> 16, self.counter & 0xFFFF, self.counter >> 16,
                500, 100, 0)
        frame = with_crc(bytes((buf[0], 0x04, 20)) + struct.pack(">10H", *regs))
        if self.fault == "crc":
            frame = frame[:-1] + bytes(((frame[-1] + 1) & 0xFF,))
        self._rx += frame
        return len(buf)

    def any(self):
        return len(self._rx)

    def read(self, n=-1):
        if not self._rx:
            return None
        if n is None or n < 0:
            n = len(self._rx)
        out = self._rx[:n]
        self._rx = self._rx[n:]
        return out


class WrappingClock:
    """ticks_ms as on the ESP32 (wrapping at 2**30, compared with ticks_diff) and the wall
    time advancing with them; starts a few seconds before the wrap."""

    def __init__(self, t=T0, ms=_WRAP - 5000):
        self.ms = ms
        self.t = t
        self._sub = 0

    def advance(self, ms):
        self.ms = (self.ms + ms) % _WRAP
        self._sub += ms
        self.t += self._sub // 1000
        self._sub %= 1000

    def ticks_ms(self):
        return self.ms

    def ticks_diff(self, a, b):
        half = _WRAP // 2
        return ((a - b + half) % _WRAP) - half

    def ticks_add(self, a, b):
        return (a + b) % _WRAP

    def now(self):
        return self.t

    def valid(self):
        return True

    def not_before(self, t):
        if t and self.t < t:
            self.t = t


class Board:
    def __init__(self, line, relay_closed):
        self.relay_pin = FakePin(Relay.level_for(relay_closed, True))
        self.relay = Relay(self.relay_pin, active_low=True)
        line.relay_box.append(self.relay)
        self.sensor = Pzem004t(line, retries=2)
        self.display = None

    def cover_open(self):
        return False


def make_config(**over):
    cfg, problems = meter_config.from_dict({
        "meter_id": "MTR-R1", "initial_balance_cents": 100000,
        "tariff": {"version": 1, "bands": [{"upto_kwh": 1, "rate": 1223}, {"rate": 1957}],
                   "vat_bp": 1600},
        "policy": {"min_switch_s": 10}, "persist_interval_s": 60})
    assert problems == []
    for k in over:
        cfg[k] = over[k]
    return cfg


def boot(path, cfg, clock, counter=0):
    app = MeterApp(cfg, StateStore(path), clock)
    line = PzemLine(clock, [], counter)
    board = Board(line, app.relay_at_boot())
    app.attach(board)
    return app, board, line


def run(app, clock, seconds):
    for _ in range(seconds):
        clock.advance(1000)
        app.tick()


class Rtc:
    """machine.RTC's datetime() over a seconds count that tests can move."""

    def __init__(self):
        self.t = epoch(2000, 1, 1)  # where the ESP32 RTC restarts after a power cut

    def datetime(self, dt=None):
        if dt is None:
            y, m, d, hh, mm, ss, wd = local_parts(self.t, 0)
            return (y, m, d, wd, hh, mm, ss, 0)
        self.t = epoch(dt[0], dt[1], dt[2], dt[4], dt[5], dt[6])


class RtcClock(Clock):
    """The firmware's Clock on a fake RTC, with ticks the test moves (CPython has no
    time.ticks_ms)."""

    def __init__(self):
        Clock.__init__(self, Rtc(), 10800)
        self.ms = 0

    def advance(self, ms):
        self.ms += ms
        self.rtc.t += ms // 1000  # the RTC runs on; only NTP or not_before() set it

    def ticks_ms(self):
        return self.ms

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b
