# S0 pulse input (IEC 62053-31) of a certified meter: pulses counted by a pin interrupt.
#
# Accuracy. Energy is exact to one pulse: 1 Wh at 1000 imp/kWh, 0.3125 Wh at 3200 imp/kWh,
# since the certified meter does the metrology and we only count. Power comes from the last
# interval between pulses, measured in whole ms with the ISR's latency (a soft interrupt on the
# ESP32 can run a few ms late during garbage collection or a flash write): the relative error is
# about (1 ms + latency jitter) / interval, under 0.1 % at 1 kW and 1000 imp/kWh (3.6 s
# between pulses), several % at 20 kW and 3200 imp/kWh (56 ms). It lags: a change of load shows
# only at the next pulse, and a drop is seen as a decay bounded by one pulse's energy over the
# time since the last pulse. Pulses closer together than debounce_ms are taken as contact
# bounce, which caps the power that can be measured at 3.6e9 / (impulses_per_kwh x debounce_ms)
# W (180 kW at 1000 imp/kWh and 20 ms), far above any domestic supply.
from micropython import const

from meter.drivers.reading import Reading

_IDLE_MS = const(3_600_000)  # an hour without pulses: forget the last interval (see read)
_SNAPSHOT_TRIES = const(4)


class S0Counter:
    def __init__(self, pin, impulses_per_kwh=1000, debounce_ms=20, ticks=None):
        if type(impulses_per_kwh) is not int or impulses_per_kwh <= 0:
            raise ValueError("impulses_per_kwh must be a positive int")
        if type(debounce_ms) is not int or debounce_ms < 0:
            raise ValueError("debounce_ms must be a non-negative int")
        if ticks is None:
            import time
            ticks = time
        self.counts_per_kwh = impulses_per_kwh
        self.debounce_ms = debounce_ms
        self._ticks_ms = ticks.ticks_ms
        self._ticks_diff = ticks.ticks_diff
        # Everything the interrupt handler touches exists before the first interrupt, and it
        # only stores small ints: no allocation happens in the handler.
        self.pulses = 0
        self.bounces = 0
        self._last_ms = 0
        self._prev_ms = 0
        self._interval_from = 0  # pulses counted when the last interval was forgotten
        self._handler = self._on_edge  # a bound method made once, not on every interrupt
        pin.irq(trigger=pin.IRQ_FALLING, handler=self._handler)

    def _on_edge(self, pin):
        now = self._ticks_ms()
        if self.pulses and self._ticks_diff(now, self._last_ms) < self.debounce_ms:
            self.bounces += 1
            return
        self._prev_ms = self._last_ms
        self._last_ms = now
        self.pulses += 1

    def read(self, now_ms=None):
        """energy = pulses counted; power_dw estimated from the pulse timing (see above)."""
        if now_ms is None:
            now_ms = self._ticks_ms()
        pulses, last_ms, prev_ms = self._snapshot()
        since = self._ticks_diff(now_ms, last_ms)
        if pulses and since > _IDLE_MS:
            # ticks wrap after days; an interval this old is meaningless, and the power it
            # implies is below 1 W anyway. Power resumes after two fresh pulses.
            self._interval_from = pulses
        power_dw = 0
        if pulses - self._interval_from >= 2:
            interval = self._ticks_diff(last_ms, prev_ms)
            if since > interval:
                interval = since  # no pulse for longer than the last gap: power is falling
            if interval > 0:
                power_dw = self._power_dw(interval)
        return Reading(energy=pulses, power_dw=power_dw)

    def _power_dw(self, interval_ms):
        # One pulse is 3.6e6 / k joules; over interval_ms that is 3.6e10 / (k x ms) in 0.1 W,
        # rounded to the nearest.
        divisor = self.counts_per_kwh * interval_ms
        return (36_000_000_000 + divisor // 2) // divisor

    def _snapshot(self):
        # The handler can run between any two bytecodes; reading the count on both sides of
        # the stamps proves no pulse landed in between.
        for _ in range(_SNAPSHOT_TRIES):
            pulses = self.pulses
            last_ms = self._last_ms
            prev_ms = self._prev_ms
            if pulses == self.pulses:
                return pulses, last_ms, prev_ms
        return self.pulses, self._last_ms, self._prev_ms
