# The meter's small front-panel devices: a 4x4 matrix keypad, the cover (tamper) switch and
# the buzzer, as seen from their pins.

LAYOUT = ("123A", "456B", "789C", "*0#D")


class Keypad:
    """Rows are driven by the firmware, columns read back through pull-ups: a held key
    connects its row to its column, so the column reads low while that row is driven low."""

    def __init__(self, layout=LAYOUT):
        self.layout = layout
        self._held = {}  # key -> virtual time (ms) it is released
        self.presses = 0

    def position(self, key):
        for r, row in enumerate(self.layout):
            c = row.find(key)
            if c >= 0:
                return r, c
        raise ValueError("no key %r on the keypad" % (key,))

    def press(self, key, now_ms, hold_ms=80):
        self.position(key)
        self._held[key] = now_ms + hold_ms
        self.presses += 1

    def release_all(self):
        self._held = {}

    def held(self, now_ms):
        return [k for k, until in self._held.items() if now_ms < until]

    def column_level(self, col, row_levels, now_ms):
        """Level of column `col` given the levels the firmware drives on the rows."""
        for key in self.held(now_ms):
            r, c = self.position(key)
            if c == col and r < len(row_levels) and row_levels[r] == 0:
                return 0
        return 1


class CoverSwitch:
    """Closed cover holds the input low; opening the cover lets the pull-up raise it."""

    def __init__(self):
        self.is_open = False
        self.listeners = []  # fn(level) on every change, wired to the pin's irq

    def level(self):
        return 1 if self.is_open else 0

    def set_open(self, is_open):
        if bool(is_open) == self.is_open:
            return
        self.is_open = bool(is_open)
        for fn in self.listeners:
            fn(self.level())


class Buzzer:
    """Remembers when the buzzer sounded: (on_ms, off_ms or None) per beep."""

    def __init__(self):
        self.on = False
        self.beeps = []

    def drive(self, on, now_ms):
        on = bool(on)
        if on == self.on:
            return
        self.on = on
        if on:
            self.beeps.append([now_ms, None])
        elif self.beeps:
            self.beeps[-1][1] = now_ms
