# An active (self-oscillating) buzzer on a pin, playing on/off patterns without blocking.
#
# Time comes in as now_ms from time.ticks_ms(); only differences are taken, through the ticks
# object's ticks_diff (the time module by default), so the ticks wrap-around is harmless.


class Buzzer:
    def __init__(self, pin, active_low=False, ticks=None):
        if ticks is None:
            import time
            ticks = time
        self._pin = pin
        self._on = 0 if active_low else 1
        self._ticks_diff = ticks.ticks_diff
        self._pattern = ()
        self._step = 0
        self._left_ms = 0
        self._last_ms = 0
        self.busy = False
        pin.value(1 - self._on)

    def beep(self, now_ms, pattern=(100,)):
        """Start pattern: durations in ms, sounding first, then silent, then sounding..."""
        if not pattern:
            raise ValueError("empty pattern")
        for ms in pattern:
            if type(ms) is not int or ms <= 0:
                raise ValueError("pattern durations must be positive ints")
        self._pattern = pattern
        self._step = 0
        self._left_ms = pattern[0]
        self._last_ms = now_ms
        self.busy = True
        self._pin.value(self._on)

    def update(self, now_ms):
        """Advance the pattern to now_ms; call every turn of the main loop."""
        if not self.busy:
            return
        elapsed = self._ticks_diff(now_ms, self._last_ms)
        if elapsed <= 0:
            return
        self._last_ms = now_ms
        # Steps are carried over exactly, so a late loop turn shortens the next step rather
        # than stretching the whole pattern.
        left = self._left_ms - elapsed
        pattern = self._pattern
        step = self._step
        while left <= 0:
            step += 1
            if step >= len(pattern):
                self.off()
                return
            left += pattern[step]
        self._step = step
        self._left_ms = left
        self._pin.value(self._on if step % 2 == 0 else 1 - self._on)

    def off(self):
        self.busy = False
        self._pattern = ()
        self._pin.value(1 - self._on)

    def sounding(self):
        return self._pin.value() == self._on
