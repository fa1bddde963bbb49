# micropython-heap: 128k (imports every firmware module: bytecode lives in the unix port's heap)
# Review of the whole tick path (issue #2): the app on the real PZEM driver speaking Modbus bytes,
# the real clock on an RTC that restarts in 2000, ticks that wrap, power cuts at every byte of
# the state write and a flash that refuses writes.
import gc
import struct
import sys

from meter import config as meter_config
from meter.app import MeterApp
from meter.calendar import epoch, local_parts
from meter.clock import Clock
from meter.drivers.modbus import with_crc
from meter.drivers.pzem004t import Pzem004t
from meter.drivers.relay import Relay
from meter.storage import StateStore, encode
from support import FakePin, tmpdir

T0 = 1767225600  # 2026-01-01 00:00 UTC
_WRAP = 1 << 30  # the ESP32's ticks_ms period
_MICROPYTHON = sys.implementation.name == "micropython"


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


def test_pzem_crc_errors_timeouts_and_exceptions_bill_nothing_twice_and_nothing_lost():
    path = tmpdir("rv_pzem")
    clock = WrappingClock()
    app, board, line = boot(path, make_config(), clock)
    line.power_w = 3600  # one Wh a second
    run(app, clock, 20)
    assert board.relay.is_closed()
    for fault in ("crc", "silent", "exception"):
        billed = app.energy.total_wh
        line.fault = fault
        run(app, clock, 6)
        assert app.energy.total_wh == billed, fault  # no reading: nothing billed, no zero
        assert app.snapshot["power_w"] is None
        assert app.snapshot["alerts"]["sensor_fault"] is True
        line.fault = None
        run(app, clock, 1)
        # The gap's energy arrives once, with the next good reading: every Wh the module
        # counted is billed once (the first reading, relay still open, was the baseline 0).
        assert app.energy.total_wh == line.counter, fault
        assert app.snapshot["alerts"]["sensor_fault"] is False
    assert app.biller.total_wh == app.energy.total_wh
    assert app.ledger.total_debited == app.biller.total_cents
    # a CRC error or a timeout is retried, an exception reply is not: 3 + 3 + 1 requests a read
    assert line.requests == 20 + 6 * 3 + 1 + 6 * 3 + 1 + 6 * 1 + 1


def test_ticks_wrapping_at_2_to_the_30_changes_nothing_in_billing_persisting_or_switching():
    path = tmpdir("rv_wrap")
    clock = WrappingClock(ms=_WRAP - 30500)
    app, board, line = boot(path, make_config(initial_balance_cents=2000), clock)
    line.power_w = 36000  # 10 Wh a second
    run(app, clock, 2)
    assert board.relay.is_closed()
    writes = app.store.writes
    run(app, clock, 100)  # through the wrap, 30 s in
    assert clock.ms < 100000  # the wrap really happened
    assert app._uptime_ms == 102000
    assert app.store.writes - writes == 1  # at 61 s of uptime: not every tick, not never
    assert app.energy.total_wh == line.counter
    # 2000 cents run out a little after the first kWh (band edge) and the relay opens
    run(app, clock, 50)
    assert app.ledger.balance <= 0 and not board.relay.is_closed()
    assert app.energy.total_wh == line.counter
    assert app.ledger.total_debited == app.biller.total_cents


def test_a_power_cut_at_every_byte_of_a_state_write_bills_every_wh_once():
    path = tmpdir("rv_torn")
    clock = WrappingClock(ms=0)
    cfg = make_config()
    app, board, line = boot(path, cfg, clock)
    # 43.21 kW: about 12 Wh a second, so the 1 kWh band edge falls between the last periodic
    # save and the cut, and the sub-cent remainders never come out even.
    line.power_w = 43210
    run(app, clock, 61)  # persisted once at 60 s with energy on it
    run(app, clock, 30)
    store = app.store
    target = store.slot_paths()[1 if store._newest == 0 else 0]
    with open(target, "rb") as f:
        old = f.read()
    image = encode(app.state(), store.seq + 1)
    # What the uncut meter holds after one more second: the reference for every cut.
    run(app, clock, 1)
    want_balance = app.ledger.balance
    want_wh = app.energy.total_wh
    assert app.biller.month_wh > 1000 > app.store.load()["biller"]["month_wh"]
    counter = line.counter
    step = 1 if len(image) < 1200 else 3
    for cut in range(0, len(image) + 1, step):
        with open(target, "wb") as f:
            f.write(memoryview(image)[:cut])
            f.write(memoryview(old)[cut:])
        if _MICROPYTHON:
            gc.collect()  # a boot a byte fragments the capped heap; cheap there, slow here
        again = WrappingClock(t=clock.t, ms=clock.ms)
        app2, board2, line2 = boot(path, cfg, again, counter=counter)
        assert board2.relay.is_closed(), cut  # the relay comes back closed, no flicker
        assert board2.relay_pin.history == [], cut
        again.advance(1000)
        app2.tick()
        assert app2.ledger.balance == want_balance, cut
        assert app2.energy.total_wh == want_wh, cut


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


def test_rtc_back_in_2000_after_a_power_cut_keeps_the_month_and_grants_no_friendly_hours():
    path = tmpdir("rv_rtc")
    cfg = make_config(initial_balance_cents=300)
    cfg["policy"]["friendly"] = [18 * 60, 7 * 60]
    clock = RtcClock()
    clock.set(epoch(2026, 1, 20, 18, 0, 0))  # 21:00 in Kenya, by NTP: inside the window
    app, board, line = boot(path, cfg, clock)
    line.power_w = 3600
    run(app, clock, 2)
    assert board.relay.is_closed() and app.biller.month_key == 202601
    app.biller.month_wh = 1500  # well into the second band this month
    app.persist()
    # Power cut. The RTC restarts at 2000-01-01; no network, so no NTP.
    clock2 = RtcClock()
    app2, board2, line2 = boot(path, cfg, clock2)
    assert clock2.now() == epoch(2026, 1, 20, 18, 0, 2)  # carried forward, never back
    assert board2.relay.is_closed()  # it had credit: back on without a flicker
    line2.power_w = 36000  # 10 Wh a second: the rest of the 300 cents is gone in seconds
    run(app2, clock2, 30)
    assert app2.biller.month_key == 202601 and app2.biller.month_wh >= 1500
    # The time of day is only a guess until NTP: no friendly hours on it, the supply is cut.
    assert app2.ledger.balance <= 0
    assert not board2.relay.is_closed() and app2.policy.reason == "no_credit"


def test_a_flash_that_refuses_the_write_refuses_the_credit_and_the_resend_applies_once():
    path = tmpdir("rv_full")
    clock = WrappingClock(ms=0)
    cfg = make_config(initial_balance_cents=0)
    app, board, line = boot(path, cfg, clock)
    run(app, clock, 2)
    msg = {"id": "QKX1", "seq": 1, "amount_cents": 5000, "source": "cloud"}
    app.store.root = path + "/gone"  # every write fails, as on a full or dead flash
    assert app.apply_recharge(msg) == ("rejected", "storage_error")
    assert app.ledger.balance == 0 and not board.relay.is_closed()
    assert app.apply_recharge(msg) == ("rejected", "storage_error")  # re-sent: still nothing
    app.store.root = path
    assert app.apply_recharge(msg) == ("applied", "ok")
    assert app.apply_recharge(msg) == ("duplicate", "already_applied")
    assert app.ledger.balance == 5000 and board.relay.is_closed()
    app2, _, _ = boot(path, cfg, WrappingClock(t=clock.t, ms=0))
    assert app2.ledger.balance == 5000
    assert app2.apply_recharge(msg)[0] == "duplicate"


def test_overload_lockout_survives_a_reboot_and_the_relay_boots_open():
    path = tmpdir("rv_lock")
    clock = WrappingClock(ms=0)
    cfg = make_config()
    cfg["policy"] = {"max_power_w": 3000, "overload_grace_s": 2, "reconnect_delay_s": 30,
                     "max_trips": 2, "trip_window_s": 3600, "min_switch_s": 10}
    app, board, line = boot(path, cfg, clock)
    run(app, clock, 2)
    line.power_w = 4000
    run(app, clock, 5)
    assert not board.relay.is_closed() and app.snapshot["alerts"]["overload"]
    run(app, clock, 31)  # reconnects after the delay, still overloaded: second trip
    run(app, clock, 5)
    assert app.snapshot["alerts"]["lockout"] and not board.relay.is_closed()
    app2, board2, _ = boot(path, cfg, WrappingClock(t=clock.t + 600, ms=0))
    assert not board2.relay.is_closed() and board2.relay_pin.history == []
    run(app2, clock, 120)
    assert not board2.relay.is_closed() and app2.policy.reason == "lockout"
