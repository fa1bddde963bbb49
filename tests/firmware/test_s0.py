from meter.drivers.s0 import S0Counter
from support import FakePin, raises


class FakeTicks:
    """A millisecond counter the test moves by hand; wraps like the ESP32's (2**30)."""

    PERIOD = 1 << 30
    # 2**30 itself is a big int on a 32-bit MicroPython (small ints stop at 2**30 - 1): the
    # arithmetic the handler runs with the heap locked uses only these two.
    MASK = (1 << 30) - 1
    HALF = 1 << 29

    def __init__(self, now=0):
        self.now = now

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        d = (a - b) & self.MASK
        return (d - self.HALF) - self.HALF if d >= self.HALF else d

    def advance(self, ms):
        self.now = (self.now + ms) & self.MASK


def make(impulses=1000, debounce=20, start=0):
    pin = FakePin(1)
    ticks = FakeTicks(start)
    return S0Counter(pin, impulses_per_kwh=impulses, debounce_ms=debounce, ticks=ticks), pin, ticks


def pulse_every(pin, ticks, gap_ms, n):
    for _ in range(n):
        ticks.advance(gap_ms)
        pin.fire()


def test_registers_a_falling_edge_interrupt():
    counter, pin, _ = make()
    assert pin.trigger == FakePin.IRQ_FALLING
    assert pin.handler is not None
    assert counter.counts_per_kwh == 1000


def test_handler_is_bound_once():
    counter, pin, _ = make()
    handler = pin.handler
    pin.fire()
    assert pin.handler is handler
    assert counter._handler is handler


def test_handler_does_not_allocate():
    # Only MicroPython can lock its heap; there an allocation in the handler is a MemoryError.
    import micropython
    counter, pin, ticks = make()
    pin.fire()
    ticks.advance(1000)
    if hasattr(micropython, "heap_lock"):
        micropython.heap_lock()
        try:
            pin.fire()
            pin.fire()  # a bounce, the other path
        finally:
            micropython.heap_unlock()
    else:
        pin.fire()
        pin.fire()
    assert counter.pulses == 2
    assert counter.bounces == 1


def test_counts_pulses_as_energy():
    counter, pin, ticks = make()
    assert counter.read().energy == 0
    pulse_every(pin, ticks, 1000, 7)
    r = counter.read()
    assert r.energy == 7
    assert r.voltage_dv == 0 and r.current_ma == 0 and r.alarm is False


def test_edges_5_ms_apart_are_one_pulse():
    counter, pin, ticks = make()
    ticks.advance(100)
    pin.fire()
    ticks.advance(5)
    pin.fire()
    assert counter.pulses == 1
    assert counter.bounces == 1
    ticks.advance(14)  # 19 ms after the accepted edge: still a bounce
    pin.fire()
    assert counter.pulses == 1
    ticks.advance(1)  # 20 ms: a new pulse
    pin.fire()
    assert counter.pulses == 2


def test_debounce_zero_counts_everything():
    counter, pin, ticks = make(debounce=0)
    pin.fire()
    pin.fire()
    assert counter.pulses == 2


def test_no_power_before_two_pulses():
    counter, pin, ticks = make()
    assert counter.read().power_dw == 0
    ticks.advance(500)
    pin.fire()
    assert counter.read(ticks.now).power_dw == 0


def test_power_from_the_interval_between_pulses():
    counter, pin, ticks = make()
    pulse_every(pin, ticks, 3600, 2)  # 1 Wh per 3.6 s is 1 kW
    assert counter.read(ticks.now).power_dw == 10000
    pulse_every(pin, ticks, 1800, 1)  # 2 kW
    assert counter.read(ticks.now).power_dw == 20000


def test_power_rounds_to_the_nearest_tenth_of_a_watt():
    counter, pin, ticks = make()
    pulse_every(pin, ticks, 7000, 2)  # 3600000 / 7000 = 514.2857 W
    assert counter.read(ticks.now).power_dw == 5143


def test_power_decays_when_pulses_stop():
    counter, pin, ticks = make()
    pulse_every(pin, ticks, 3600, 2)
    ticks.advance(3000)  # still within the last interval: unchanged
    assert counter.read().power_dw == 10000
    ticks.advance(4200)  # 7.2 s since the last pulse: at most half
    assert counter.read().power_dw == 5000
    ticks.advance(36000 - 7200)  # 36 s: at most 100 W
    assert counter.read().power_dw == 1000
    previous = 1000
    for _ in range(5):
        ticks.advance(60000)
        p = counter.read().power_dw
        assert p < previous
        previous = p


def test_read_defaults_to_the_ticks_clock_and_accepts_an_explicit_now():
    counter, pin, ticks = make()
    pulse_every(pin, ticks, 3600, 2)
    assert counter.read(ticks.now + 7200).power_dw == 5000
    assert counter.read().power_dw == 10000


def test_3200_impulses_per_kwh():
    counter, pin, ticks = make(impulses=3200)
    assert counter.counts_per_kwh == 3200
    # 1 kW is 3200 pulses an hour: one every 1125 ms
    pulse_every(pin, ticks, 1125, 3200)
    r = counter.read(ticks.now)
    assert r.energy == 3200
    assert r.power_dw == 10000


def test_pulses_across_the_ticks_wrap():
    counter, pin, ticks = make(start=FakeTicks.PERIOD - 1000)
    pulse_every(pin, ticks, 900, 1)
    pulse_every(pin, ticks, 1800, 1)  # wraps here
    assert ticks.now < 1800
    assert counter.read(ticks.now).power_dw == 20000


def test_a_long_silence_forgets_the_old_interval():
    counter, pin, ticks = make()
    pulse_every(pin, ticks, 3600, 2)
    ticks.advance(3_600_001)
    assert counter.read().power_dw == 0
    pulse_every(pin, ticks, 1000, 1)  # the first pulse after the pause gives no interval
    assert counter.read().power_dw == 0
    pulse_every(pin, ticks, 1800, 1)
    assert counter.read().power_dw == 20000
    assert counter.read().energy == 4


def test_rejects_bad_arguments():
    raises(ValueError, S0Counter, FakePin(), impulses_per_kwh=0, ticks=FakeTicks())
    raises(ValueError, S0Counter, FakePin(), impulses_per_kwh=True, ticks=FakeTicks())
    raises(ValueError, S0Counter, FakePin(), debounce_ms=-1, ticks=FakeTicks())
