# Energy accounting: turns a sensor's cumulative counter into billable Wh. Consumption is
# computed from counter deltas only, so a missed reading loses nothing (the next delta has it);
# a counter that goes backwards is a restart of the sensor and an implausible jump is a swapped
# module or a corrupt frame: neither is ever billed as negative or huge consumption.
from micropython import const

_MWH_PER_WH = const(1000)


class EnergyAccount:
    def __init__(self, counts_per_kwh=1000, max_power_w=25000, boot_max_wh=10000, state=None):
        # counts_per_kwh: the sensor's counter unit (PZEM: 1000, one count per Wh; S0: its
        # impulse constant). max_power_w bounds a plausible delta: the 100 A PZEM reads at most
        # 23 kW, so anything faster than max_power_w is not consumption.
        self.counts_per_kwh = counts_per_kwh
        self.max_power_w = max_power_w
        self.boot_max_wh = boot_max_wh
        self.last_counter = None  # None: no baseline yet (first boot, or after a restart)
        self.remainder = 0  # counts * 1000 not yet worth a whole Wh, carried to the next delta
        self.total_wh = 0  # lifetime Wh accounted
        self.restarts = 0
        self.jumps = 0
        self.failures = 0
        self.consecutive_failures = 0
        self._boot = True  # the first delta after boot spans the time the board was off
        if state:
            self.last_counter = state.get("counter")
            self.remainder = state.get("rem", 0)
            self.total_wh = state.get("wh", 0)
            self.restarts = state.get("restarts", 0)
            self.jumps = state.get("jumps", 0)
            self.failures = state.get("failures", 0)

    def state(self):
        return {"counter": self.last_counter, "rem": self.remainder, "wh": self.total_wh,
                "restarts": self.restarts, "jumps": self.jumps, "failures": self.failures}

    def _max_counts(self, elapsed_ms):
        if self._boot:
            wh = self.boot_max_wh
        else:
            # A generous bound: twice the maximum power over the interval, plus one Wh of
            # rounding; sensors update their counter in whole units at their own pace.
            wh = (self.max_power_w * 2 * max(elapsed_ms, 1000)) // 3600000 + 1
        return wh * self.counts_per_kwh // 1000 + 1

    def update(self, counter, elapsed_ms=1000):
        """Account a good reading of the counter; returns the whole Wh to bill now."""
        self.consecutive_failures = 0
        last = self.last_counter
        self.last_counter = counter
        if last is None:
            self._boot = False
            return 0
        delta = counter - last
        limit = self._max_counts(elapsed_ms)
        self._boot = False
        if delta < 0:
            # Counter restarted (energy reset, swapped module, end of range). Counting from 0,
            # the new value is what was used since the restart, if it is plausible.
            self.restarts += 1
            delta = counter if counter <= limit else 0
        elif delta > limit:
            self.jumps += 1
            delta = 0
        return self._to_wh(delta)

    def _to_wh(self, counts):
        if counts <= 0:
            return 0
        self.remainder += counts * _MWH_PER_WH
        wh = self.remainder // self.counts_per_kwh
        self.remainder -= wh * self.counts_per_kwh
        self.total_wh += wh
        return wh

    def fail(self):
        """A reading failed (timeout, CRC, reply error): nothing is billed, the next good
        delta covers the gap."""
        self.failures += 1
        self.consecutive_failures += 1

    def sensor_fault(self, after=5):
        return self.consecutive_failures >= after
