# A matrix keypad (4x4 by default): rows driven low one at a time, columns read with pull-ups.
#
# poll() debounces by time: a key is reported once, when it has read the same for debounce_ms,
# so it must be called more often than that (every 10-20 ms) or short presses are missed.


class Keypad:
    def __init__(self, row_pins, col_pins, keys="123A456B789C*0#D", ticks=None, debounce_ms=30):
        if len(keys) != len(row_pins) * len(col_pins):
            raise ValueError("keys must name every row x column crossing")
        if ticks is None:
            import time
            ticks = time
        self._rows = tuple(row_pins)
        self._cols = tuple(col_pins)
        # One str per key made now, so a scan returns an existing object.
        self._keys = tuple(keys)
        self._ticks_diff = ticks.ticks_diff
        self.debounce_ms = debounce_ms
        self._candidate = None
        self._since = 0
        self._reported = None
        for row in self._rows:
            row.value(1)

    def scan(self):
        """The key held down now, or None for none, or for two at once (ambiguous in a
        matrix without diodes, where three keys can fake a fourth)."""
        found = -1
        ncols = len(self._cols)
        for r in range(len(self._rows)):
            row = self._rows[r]
            row.value(0)
            for c in range(ncols):
                if self._cols[c].value() == 0:
                    if found >= 0:
                        row.value(1)
                        return None
                    found = r * ncols + c
            row.value(1)
        if found < 0:
            return None
        return self._keys[found]

    def poll(self, now_ms):
        """A key once per press, after it has been steady for debounce_ms; otherwise None."""
        key = self.scan()
        if key != self._candidate:
            self._candidate = key
            self._since = now_ms
            return None
        if self._ticks_diff(now_ms, self._since) < self.debounce_ms:
            return None
        if key == self._reported:
            return None
        # Releases are recorded too (key None): the next press of the same key counts again.
        self._reported = key
        return key
