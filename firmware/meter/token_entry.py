"""The keypad and LCD front panel for tokens, like an STS meter's: digits echoed in groups of
three, `#` enters, `*` clears; the verdict (ACCEPT with the amount, USED, OLD, INVALID, LOCKED
with the minutes left) stays on the LCD for a few seconds with a tone of its own.

Short codes, one or two digits then `#`: 1 balance, 2 kWh today (since local midnight, or since
boot if the meter started later today), 3 meter number, 4 or 41..45 the last five tokens
(newest first), 5 firmware version. `A` turns the meter's own display page.

TokenEntry stands in for the board's display (same show(snapshot, now_ms)): while the panel
is in use it owns the LCD, otherwise the meter's own pages show. Drivers are given to it.
"""
from micropython import const

from meter import calendar
from meter.display import energy, money
from meter.token_counts import ADD, COUNTER_SYNC, DISABLE_PAYG, SET

HOLD_MS = const(5000)  # how long a verdict or a short code stays on the LCD
_IDLE_MS = const(30000)  # digits left half-typed are dropped after this
_MAX_DIGITS = const(12)  # an extended token
TONES = {
    "key": (25,),
    "ACCEPT": (80, 60, 80),
    "USED": (400,),
    "OLD": (400,),
    "INVALID": (150, 80, 150, 80, 150),
    "ERROR": (150, 80, 150, 80, 150),
    "LOCKED": (900,),
    "NO_TOKENS": (400,),
    "info": (60,),
}
_KINDS = {ADD: "ADD", SET: "SET", DISABLE_PAYG: "PAYG OFF", COUNTER_SYNC: "SYNC"}


def group(digits):
    """'123 456 789': the digits in threes, as printed on a token."""
    return " ".join(digits[i:i + 3] for i in range(0, len(digits), 3))


class TokenEntry:
    def __init__(self, app, display=None, lcd=None, buzzer=None, version="", ticks=None):
        if ticks is None:
            import time
            ticks = time
        self._diff = ticks.ticks_diff  # only differences: the ticks wrap-around is harmless
        self.app = app
        self.display = display  # the meter's own pages, shown while the panel is idle
        self.lcd = lcd
        self.buzzer = buzzer
        self.version = version
        self.digits = ""
        self.lines = ("", "")
        self._active = False  # the panel owns the LCD
        self._since_ms = 0  # when the current screen went up
        self._last_key_ms = 0
        self._day = None  # (local date, energy_wh at its start) for "kWh today"
        self._written = None

    # --- the display seam ---------------------------------------------------------------
    def busy(self, now_ms):
        if not self._active:
            return False
        if self.digits and self._diff(now_ms, self._last_key_ms) < _IDLE_MS:
            return True
        if not self.digits and self._diff(now_ms, self._since_ms) < HOLD_MS:
            return True
        self.digits = ""
        self._active = False
        self._written = None
        return False

    def show(self, snapshot, now_ms):
        """What the app's tick calls: the panel's screen while in use, the meter's otherwise."""
        self._note_day(snapshot)
        if self.buzzer is not None:
            self.buzzer.update(now_ms)
        if self.busy(now_ms):
            self._write()
        elif self.display is not None:
            self.display.show(snapshot, now_ms)

    # --- keys ---------------------------------------------------------------------------
    def key(self, k, now_ms):
        """One key press from the keypad driver's poll()."""
        self._last_key_ms = now_ms
        if k in "0123456789":
            if len(self.digits) < _MAX_DIGITS:
                self.digits += k
            self._screen("TOKEN", group(self.digits), now_ms, "key")
        elif k == "*":
            if self.digits:
                self.digits = ""
                self._screen("TOKEN", "", now_ms, "key")
            else:
                self._active = False  # a second * leaves the panel
                self._written = None
        elif k == "#":
            digits, self.digits = self.digits, ""
            if len(digits) <= 2:
                self._short_code(digits, now_ms)
            else:
                self._enter(digits, now_ms)
        elif k == "A" and self.display is not None and not self.digits:
            self.display.next_page()

    def _enter(self, digits, now_ms):
        verdict, n = self.app.enter_token(digits)
        tokens = self.app.tokens
        if verdict == "ACCEPT" and tokens is not None:
            recent = tokens.recent
            kind = recent[-1][1] if recent else ADD
            if kind == SET:
                second = "BALANCE " + money(n)
            elif n:
                second = "+KES " + money(n)
            else:
                second = _KINDS.get(kind, "")
            self._screen("TOKEN ACCEPTED", second, now_ms, verdict)
        elif verdict == "INVALID":
            self._screen("INVALID TOKEN", "LOCKED %d MIN" % n if n else "TRY AGAIN", now_ms,
                         verdict)
        elif verdict == "LOCKED":
            self._screen("KEYPAD LOCKED", "WAIT %d MIN" % n, now_ms, verdict)
        else:
            text = {"USED": ("TOKEN USED", ""), "OLD": ("TOKEN TOO OLD", ""),
                    "NO_TOKENS": ("NO TOKENS", "ON THIS METER"),
                    "ERROR": ("NOT SAVED", "TRY AGAIN")}.get(verdict, (verdict, ""))
            self._screen(text[0], text[1], now_ms, verdict)

    def _short_code(self, code, now_ms):
        app = self.app
        snap = app.snapshot
        if code == "1":
            lines = ("BALANCE", "KES " + money(app.ledger.balance))
        elif code == "2":
            lines = ("KWH TODAY", energy(self._today_wh(snap)))
        elif code == "3":
            lines = ("METER NUMBER", app.config["meter_id"])
        elif code == "4" or (len(code) == 2 and code[0] == "4" and "1" <= code[1] <= "5"):
            lines = self._recent_token(1 if code == "4" else int(code[1]))
        elif code == "5":
            lines = ("FIRMWARE", self.version)
        else:
            lines = ("UNKNOWN CODE", code + "#")
        self._screen(lines[0], lines[1], now_ms, "info")

    def _recent_token(self, n):
        tokens = self.app.tokens
        recent = tokens.recent if tokens is not None else []
        if n > len(recent):
            return "TOKEN %d OF %d" % (n, len(recent)), "NONE"
        count, kind, value = recent[-n]
        money_kinds = (ADD, SET)
        text = _KINDS.get(kind, "?") + (" KES %d" % value if kind in money_kinds else "")
        return "TOKEN %d #%d" % (n, count), text

    # --- screen and tone ----------------------------------------------------------------
    def _screen(self, line1, line2, now_ms, tone):
        self.lines = (line1, line2)
        self._active = True
        self._since_ms = now_ms
        self._write()
        if self.buzzer is not None:
            self.buzzer.beep(now_ms, TONES[tone])

    def _write(self):
        if self.lcd is None or self._written == self.lines:
            return
        try:
            self.lcd.write_line(0, self.lines[0])
            self.lcd.write_line(1, self.lines[1])
            self._written = self.lines
        except OSError:
            self._written = None  # a loose LCD: try again on the next tick, never stop

    def _note_day(self, snapshot):
        t = snapshot.get("time")
        wh = snapshot.get("energy_wh")
        if type(t) is not int or type(wh) is not int:
            return
        day = calendar.date_str(t, self.app.config["utc_offset_min"] * 60)
        if self._day is None or self._day[0] != day:
            self._day = (day, wh)

    def _today_wh(self, snapshot):
        self._note_day(snapshot)
        wh = snapshot.get("energy_wh")
        if self._day is None or type(wh) is not int:
            return None
        return wh - self._day[1]

    # --- the keypad task ----------------------------------------------------------------
    async def run(self, keypad, clock, period_ms=15):
        """Poll the keypad faster than its debounce (the driver needs 10-20 ms)."""
        import asyncio
        while True:
            now = clock.ticks_ms()
            k = keypad.poll(now)
            if k is not None:
                self.key(k, now)
            await asyncio.sleep_ms(period_ms)
