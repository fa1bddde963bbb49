# Decodes what an HD44780 16x2 LCD would show from the bytes written to its PCF8574 I2C
# backpack (P0=RS, P1=RW, P2=E, P3=backlight, P4-P7=D4-D7): the two lines and the backlight.

_RS = 0x01
_RW = 0x02
_E = 0x04
_BACKLIGHT = 0x08

COLUMNS = 16
_LINE2 = 0x40
_DDRAM_SIZE = 0x80


class Hd44780:
    def __init__(self, columns=COLUMNS):
        self.columns = columns
        # The PCF8574 powers up with its pins high, but E was never seen high by the
        # controller before the first write, so start from "nothing strobed".
        self.port = 0
        self.backlight = False
        self.four_bit = False
        self.two_lines = False
        self.display_on = False
        self.cursor_on = False
        self.blink_on = False
        self.increment = True
        self.shift_display = False
        self.shift = 0
        self.address = 0
        self.ddram = bytearray(b" " * _DDRAM_SIZE)
        self.cgram = bytearray(64)
        self._cg_mode = False
        self._high = None  # the first nibble of a byte in 4-bit mode
        self.commands = []  # the last command bytes executed (bounded), for tests
        self.writes = 0

    # --- the I2C side ----------------------------------------------------------------------

    def i2c_write(self, buf):
        """Every byte written to the PCF8574 sets its eight output pins."""
        for b in buf:
            self._set_port(b)
            self.writes += 1

    def i2c_read(self, n):
        return bytes([self.port] * n)

    def _set_port(self, b):
        falling_e = (self.port & _E) and not (b & _E)
        self.port = b
        self.backlight = bool(b & _BACKLIGHT)
        if falling_e and not (b & _RW):
            # The controller latches D4-D7 on the falling edge of E.
            self._latch((b >> 4) & 0x0F, bool(b & _RS))

    def _latch(self, nibble, rs):
        if not self.four_bit:
            # 8-bit interface with D0-D3 unwired: each strobe is a whole byte, low bits 0.
            self._execute(nibble << 4, rs)
            return
        if self._high is None:
            self._high = nibble
            return
        value = (self._high << 4) | nibble
        self._high = None
        self._execute(value, rs)

    # --- the controller --------------------------------------------------------------------

    def _execute(self, value, rs):
        if rs:
            self._write_data(value)
            return
        self.commands.append(value)
        if len(self.commands) > 256:  # a meter running for months must not grow it forever
            del self.commands[:128]
        if value & 0x80:
            self._cg_mode = False
            self.address = value & 0x7F
        elif value & 0x40:
            self._cg_mode = True
            self.address = value & 0x3F
        elif value & 0x20:
            self.four_bit = not (value & 0x10)
            self.two_lines = bool(value & 0x08)
            self._high = None
        elif value & 0x10:
            self._cursor_or_shift(value)
        elif value & 0x08:
            self.display_on = bool(value & 0x04)
            self.cursor_on = bool(value & 0x02)
            self.blink_on = bool(value & 0x01)
        elif value & 0x04:
            self.increment = bool(value & 0x02)
            self.shift_display = bool(value & 0x01)
        elif value & 0x02:
            self.address = 0
            self.shift = 0
            self._cg_mode = False
        elif value & 0x01:
            for i in range(_DDRAM_SIZE):
                self.ddram[i] = 0x20
            self.address = 0
            self.shift = 0
            self.increment = True
            self._cg_mode = False

    def _cursor_or_shift(self, value):
        step = 1 if value & 0x04 else -1
        if value & 0x08:
            self.shift += step
        else:
            self.address = (self.address + step) % _DDRAM_SIZE

    def _write_data(self, value):
        if self._cg_mode:
            self.cgram[self.address & 0x3F] = value
            self.address = (self.address + 1) & 0x3F
            return
        self.ddram[self.address % _DDRAM_SIZE] = value
        self.address = (self.address + (1 if self.increment else -1)) % _DDRAM_SIZE
        if self.shift_display:
            self.shift += 1 if self.increment else -1

    # --- what a person sees ----------------------------------------------------------------

    def line(self, n):
        base = 0 if n == 0 else _LINE2
        out = []
        for col in range(self.columns):
            ch = self.ddram[base + ((col + self.shift) % 40)]
            # Codes 0-7 show user-defined glyphs; render them as a placeholder.
            out.append(chr(ch) if 32 <= ch < 127 else ("?" if ch >= 8 else "#"))
        return "".join(out)

    def lines(self):
        """The two lines of text (blank when the display is switched off)."""
        if not self.display_on:
            return (" " * self.columns, " " * self.columns)
        return (self.line(0), self.line(1))
