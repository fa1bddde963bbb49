# The firmware's one clock seam: interval ticks from `time`, wall-clock time from the RTC.
# Wall time is read through machine.RTC (set by NTP when online) rather than time.time(), so a
# simulator can supply it and so the meter can keep it from ever running backwards.
import time

from meter import calendar

# An RTC reading before 2024 has not been set since power-up (the ESP32 RTC restarts at 2000).
_MIN_VALID = 1704067200


class Clock:
    def __init__(self, rtc, utc_offset_s=10800):
        self.rtc = rtc
        self.utc_offset_s = utc_offset_s
        # True while the RTC holds a time carried forward by not_before() rather than a real
        # one: it is only a lower bound, wrong by however long the power was off.
        self.carried = False

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def ticks_add(self, a, b):
        return time.ticks_add(a, b)

    def now(self):
        """Unix seconds, UTC."""
        dt = self.rtc.datetime()
        return calendar.epoch(dt[0], dt[1], dt[2], dt[4], dt[5], dt[6])

    def set(self, t):
        """Set the true time (NTP, the cloud); the clock is valid from now on."""
        self._write(t)
        self.carried = False

    def _write(self, t):
        y, m, d, hh, mm, ss, wd = calendar.local_parts(t, 0)
        self.rtc.datetime((y, m, d, wd, hh, mm, ss, 0))

    def valid(self):
        """True when the time of day can be trusted: the RTC kept running (a reset without a
        power cut) or was set since; a carried-forward time is not (see not_before)."""
        return not self.carried and self.now() >= _MIN_VALID

    def not_before(self, t):
        """After a power cut the RTC restarts in the past: carry it forward to the last time
        the meter persisted, so month-to-date bands and time-of-use never run backwards.
        The time of day is then wrong by the length of the outage, so valid() stays False
        (no friendly hours granted on it) until set() brings the true time."""
        if t and self.now() < t:
            self._write(t)
            self.carried = True

    def minute_of_day(self, t=None):
        return calendar.minute_of_day(self.now() if t is None else t, self.utc_offset_s)
