# HD44780 character LCD (16x2 and friends) in 4-bit mode behind a PCF8574 I2C backpack.
from micropython import const

# Backpack bits: P0 = RS, P1 = RW (always write here), P2 = E, P3 = backlight, P4-P7 = D4-D7.
_RS = const(0x01)
_E = const(0x04)
_BACKLIGHT = const(0x08)

_CLEAR = const(0x01)
_ENTRY_LEFT = const(0x06)
_DISPLAY_ON = const(0x0C)
_FUNCTION_4BIT_2LINE = const(0x28)
_SET_DDRAM = const(0x80)


class LcdError(Exception):
    """A line or size the display does not have."""


class Lcd1602:
    def __init__(self, i2c, addr=0x27, cols=16, rows=2, sleep_ms=None):
        if type(cols) is not int or not 1 <= cols <= 40:
            raise LcdError("cols must be 1-40")
        if type(rows) is not int or not 1 <= rows <= 4:
            raise LcdError("rows must be 1-4")
        if sleep_ms is None:
            import time
            sleep_ms = time.sleep_ms
        self._i2c = i2c
        self.addr = addr
        self.cols = cols
        self.rows = rows
        self._sleep_ms = sleep_ms
        self._bl = _BACKLIGHT
        # Row start addresses: 0x00 and 0x40, and on 4-row panels the two halves continue
        # one width further on (0x14 / 0x54 for 20 columns).
        self._row_start = (0x00, 0x40, cols, 0x40 + cols)
        # One transfer per update: cursor command + a full line, 4 bus bytes per LCD byte.
        self._buf = bytearray(4 * (cols + 1))
        self.lines = []
        self.init()

    def init(self):
        """(Re)initialise the controller, e.g. after the display lost power; clears it."""
        sleep = self._sleep_ms
        # The PCF8574 starts with every output high, E included: bring E low before anything.
        self._i2c.writeto(self.addr, bytes((self._bl,)))
        sleep(50)  # the controller needs 40 ms after its supply rises
        # The 0x3, 0x3, 0x3, 0x2 nibble dance reaches 4-bit mode from any state, even a
        # controller left half-way through a byte by a reset of the ESP32.
        for delay_ms in (5, 1, 1):
            self._nibble(0x3)
            sleep(delay_ms)
        self._nibble(0x2)
        sleep(1)
        self._command(_FUNCTION_4BIT_2LINE)
        self._command(_DISPLAY_ON)
        self.clear()
        self._command(_ENTRY_LEFT)

    def clear(self):
        self._command(_CLEAR)
        self._sleep_ms(2)  # clear takes 1.52 ms; the controller ignores writes meanwhile
        self.lines = [" " * self.cols for _ in range(self.rows)]

    def backlight(self, on):
        self._bl = _BACKLIGHT if on else 0
        self._i2c.writeto(self.addr, bytes((self._bl,)))

    @property
    def backlight_on(self):
        return self._bl != 0

    def write_line(self, row, text):
        """Show text on row, padded or cut to the width; True if the bus was used.

        Only the span of characters that differ from what is shown is sent: this runs every
        second on a 100 kHz bus, where a full line costs about 7 ms.
        """
        if type(row) is not int or not 0 <= row < self.rows:
            raise LcdError("no row %r" % (row,))
        old = self.lines[row]
        if text == old:
            # What is shown is always fitted text, which fitting leaves as it is: skip the
            # fitting and its allocations on the common unchanged line.
            return False
        new = self._fit(text)
        if new == old:
            return False
        first = 0
        while new[first] == old[first]:
            first += 1
        last = self.cols - 1
        while new[last] == old[last]:
            last -= 1
        buf = self._buf
        n = self._put(buf, 0, _SET_DDRAM | (self._row_start[row] + first), 0)
        for i in range(first, last + 1):
            n = self._put(buf, n, ord(new[i]), _RS)
        self._i2c.writeto(self.addr, memoryview(buf)[:n])
        # Recorded only once sent: after a bus error the next call tries the line again.
        self.lines[row] = new
        return True

    def _fit(self, text):
        # Works on one bytearray: a loop over str characters would intern each one as a new
        # string on MicroPython, the allocation that fails first on a fragmented heap.
        cols = self.cols
        raw = str(text)[:cols].encode()
        out = bytearray(b" " * cols)
        n = 0
        i = 0
        while i < len(raw) and n < cols:
            code = raw[i]
            if code >= 0x80:
                # One non-ASCII character (all its UTF-8 continuation bytes) is one cell.
                i += 1
                while i < len(raw) and 0x80 <= raw[i] < 0xC0:
                    i += 1
                out[n] = 0x3F
            else:
                # The A00 character ROM has ASCII 0x20-0x7D except 0x5C (a yen sign there);
                # anything else would show as a different glyph, so it shows as '?'.
                out[n] = code if 0x20 <= code <= 0x7D and code != 0x5C else 0x3F
                i += 1
            n += 1
        return out.decode()

    def _put(self, buf, n, byte, rs):
        # A byte is two nibbles, high first; each is latched by E falling, so it is sent with E
        # high and then again with E low.
        hi = (byte & 0xF0) | self._bl | rs
        lo = ((byte << 4) & 0xF0) | self._bl | rs
        buf[n] = hi | _E
        buf[n + 1] = hi
        buf[n + 2] = lo | _E
        buf[n + 3] = lo
        return n + 4

    def _command(self, byte):
        buf = self._buf
        self._put(buf, 0, byte, 0)
        self._i2c.writeto(self.addr, memoryview(buf)[:4])

    def _nibble(self, nibble):
        b = (nibble << 4) | self._bl
        self._i2c.writeto(self.addr, bytes((b | _E, b)))
