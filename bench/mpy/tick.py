# CPU time of one app.tick() (sensor read, billing, policy, display, persist when due), timed
# with the port's real ticks_us while the simulated clock moves one second per tick outside the
# timed span. Variants: "sim" (the simulator's fakes), "split" (the same, with each fake's own
# time measured inside it), "trivial" (fakes replaced by stand-ins that do almost nothing),
# plus "driver": the PZEM driver alone against a canned UART reply. Prints a line per tick
# ("tick us_in_tick us_in_fakes fake_calls persisted") and then one JSON line.
import array
import gc
import json

import time
import rig

_us = time.real_ticks_us
_diff = time.ticks_diff


class _Timed:
    """Base of the timing proxies: the time spent inside the wrapped fake, per call."""

    def __init__(self, target, acc):
        self._t = target
        self._acc = acc  # [microseconds inside fakes, calls]

    def _add(self, t0):
        acc = self._acc
        acc[0] += _diff(_us(), t0)
        acc[1] += 1


class TimedUart(_Timed):
    def write(self, buf):
        t0 = _us()
        r = self._t.write(buf)
        self._add(t0)
        return r

    def read(self, n=-1):
        t0 = _us()
        r = self._t.read() if n < 0 else self._t.read(n)
        self._add(t0)
        return r

    def any(self):
        t0 = _us()
        r = self._t.any()
        self._add(t0)
        return r


class TimedI2C(_Timed):
    def writeto(self, addr, buf, stop=True):
        t0 = _us()
        r = self._t.writeto(addr, buf)
        self._add(t0)
        return r


class TimedPin(_Timed):
    def value(self, x=None):
        t0 = _us()
        r = self._t.value(x)
        self._add(t0)
        return r


class TimedRtc(_Timed):
    def datetime(self, dt=None):
        t0 = _us()
        r = self._t.datetime(dt)
        self._add(t0)
        return r


class _Null:
    def write(self, buf):
        return len(buf)

    def read(self, n=-1):
        return None

    def any(self):
        return 0

    def writeto(self, addr, buf, stop=True):
        return 1

    def value(self, x=None):
        return 0

    def datetime(self, dt=None):
        return None


class TrivialSensor:
    """A sensor that costs nothing: one Reading, its counter moved on by 1 Wh every 4 s
    (about 900 W), so billing and the display still change as they do with a real load."""

    counts_per_kwh = 1000

    def __init__(self, reading):
        self._r = reading
        self._n = 0

    def read(self):
        self._n += 1
        if self._n % 4 == 0:
            self._r.energy += 1
        return self._r


class TrivialPin:
    def __init__(self, level):
        self.level = level

    def value(self, x=None):
        if x is None:
            return self.level
        self.level = x
        return None


class TrivialRtc:
    """Wall time frozen at the simulated clock's start: the firmware still converts it."""

    def __init__(self, dt):
        self._dt = dt

    def datetime(self, dt=None):
        return self._dt


class CannedUart:
    """Answers every request with the same reply bytes, as fast as a UART buffer can."""

    def __init__(self, reply):
        self._reply = reply
        self._pending = None

    def write(self, buf):
        self._pending = self._reply
        return len(buf)

    def any(self):
        return 0 if self._pending is None else len(self._pending)

    def read(self, n=-1):
        r = self._pending
        self._pending = None
        return r


def _count_saves(app):
    saves = [0]
    save = app.store.save

    def counted(state):
        saves[0] += 1
        return save(state)

    app.store.save = counted
    return saves


def _wire_split(app, acc):
    b = app.board
    b.sensor._uart = TimedUart(b.sensor._uart, acc)
    lcd = b.display._lcd
    lcd._i2c = TimedI2C(lcd._i2c, acc)
    b.relay._pin = TimedPin(b.relay._pin, acc)
    app.clock.rtc = TimedRtc(app.clock.rtc, acc)


def _wire_trivial(app):
    b = app.board
    b.sensor = TrivialSensor(b.sensor.read())
    b.display._lcd._i2c = _Null()
    b.relay._pin = TrivialPin(b.relay._pin.value())
    app.clock.rtc = TrivialRtc(app.clock.rtc.datetime())


def _calibrate(acc, calls=2000):
    """What one proxied call costs outside and inside its own measured span."""
    proxy = TimedPin(_Null(), acc)
    t0 = _us()
    for _ in range(calls):
        proxy.value()
    total = _diff(_us(), t0)
    inside = acc[0]
    acc[0] = acc[1] = 0
    return total / calls, inside / calls


def main(flash_dir, variant="sim", warm=120, ticks=2000, start_hour=19):
    """start_hour: local time of the first tick; the evening peak by default (kettle, iron,
    TV), where the counter moves every few seconds and billing runs often."""
    if variant == "driver":
        return driver(ticks)
    rig.clean(flash_dir)
    # Enough credit that the relay stays closed all along.
    clock, world, board = rig.make_board(flash_dir, 10000000, start_hour=start_hour)
    log = rig.LogCounter()
    app = rig.start(flash_dir, log)
    for _ in range(warm):
        rig.step(clock, board, app)
    acc = [0, 0]
    out = {"variant": variant, "warm": warm}
    if variant == "split":
        out["proxy_call_us"], out["proxy_inside_us"] = _calibrate(acc)
        _wire_split(app, acc)
    elif variant == "trivial":
        _wire_trivial(app)
    elif variant != "sim":
        raise rig.BenchError("unknown variant %r" % variant)
    saves = _count_saves(app)
    times = array.array("i", bytearray(4 * ticks))
    inside = array.array("i", bytearray(4 * ticks))
    calls = bytearray(ticks)
    persisted = bytearray(ticks)
    gc.collect()
    tick = app.tick
    for i in range(ticks):
        clock.advance(1000)
        board.poll()
        board.lcd.commands.clear()
        before = saves[0]
        acc[0] = acc[1] = 0
        t0 = _us()
        tick()
        times[i] = _diff(_us(), t0)
        inside[i] = acc[0]
        calls[i] = min(255, acc[1])
        persisted[i] = saves[0] != before
    if app.tick_errors or app.persist_errors:
        raise rig.BenchError("tick errors %d, persist errors %d: %s" % (
            app.tick_errors, app.persist_errors, log.last))
    # One line a tick; the driver does the statistics (sorting thousands of ints here would
    # need a large free block on a heap the simulator has already fragmented).
    for i in range(ticks):
        print("tick", times[i], inside[i], calls[i], persisted[i])
    out["energy_wh"] = app.energy.total_wh
    out["gc_collect_us"] = _gc_cost()
    out["churn_ticks"] = 20
    out["churn"] = _churn(clock, board, app, out["churn_ticks"])
    out["ticks_ms_call_us"] = _ticks_ms_cost()
    print(json.dumps(out))


def _churn(clock, board, app, ticks):
    """Bytes the ticks allocate and drop, with the collector held off: how fast a tick fills
    the free heap, and so how often the GC runs. Few ticks: a tick drops kilobytes."""
    gc.collect()
    gc.disable()
    try:
        start = gc.mem_alloc()
        for _ in range(ticks):
            clock.advance(1000)
            board.poll()
            app.tick()
        return gc.mem_alloc() - start
    finally:
        gc.enable()


def _gc_cost(runs=5):
    """A full collection with the meter's heap as it is (the sim's objects included)."""
    best = None
    for _ in range(runs):
        t0 = _us()
        gc.collect()
        dt = _diff(_us(), t0)
        best = dt if best is None or dt < best else best
    return best


def _ticks_ms_cost(calls=2000):
    """The bench's virtual time.ticks_ms is Python, the device's is C: what that adds."""
    ticks_ms = time.ticks_ms
    t0 = _us()
    for _ in range(calls):
        ticks_ms()
    virtual = _diff(_us(), t0)
    real = time.real_ticks_ms
    t0 = _us()
    for _ in range(calls):
        real()
    return (virtual - _diff(_us(), t0)) / calls


def driver(reads):
    """The PZEM-004T driver's read() (request, frame search, CRC, registers) with no fake."""
    from devices.pzem import read_request, with_crc
    from meter.drivers.pzem004t import Pzem004t
    regs = (2301, 3900, 0, 8970, 0, 12345, 0, 500, 100, 0)
    body = bytearray((0x01, 0x04, 20))
    for r in regs:
        body.append(r >> 8)
        body.append(r & 0xFF)
    pzem = Pzem004t(CannedUart(with_crc(body)), address=0x01)
    if pzem.read().energy != 12345 or len(read_request()) != 8:
        raise rig.BenchError("canned reply misread")
    times = array.array("i", bytearray(4 * reads))
    for i in range(reads):
        t0 = _us()
        pzem.read()
        times[i] = _diff(_us(), t0)
    for t in times:
        print("tick", t, 0, 0, 0)
    print(json.dumps({"variant": "driver"}))
