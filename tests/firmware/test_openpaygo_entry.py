# micropython-heap: 208k (every firmware module's bytecode in the unix port's heap, the panel and display too: 176k passes)
# The token front panel: digits echoed in threes, * clears, # enters; each verdict on the LCD
# with its own tone for a few seconds, then the meter's own pages again; the short codes.
from meter.drivers.buzzer import Buzzer
from meter.token_entry import HOLD_MS, TONES, TokenEntry, group
from support import FakePin, tmpdir
from test_openpaygo_app import ADD, SET, boot


class Lcd:
    """What the LCD shows, row by row (the Lcd1602 interface the panel writes through)."""

    def __init__(self):
        self.rows = ["", ""]

    def write_line(self, row, text):
        self.rows[row] = text


class PagesDisplay:
    """The meter's own display: counts the ticks it was given the LCD."""

    def __init__(self, lcd):
        self.lcd = lcd
        self.shown = 0
        self.page = 0

    def show(self, snapshot, now_ms):
        self.shown += 1
        self.lcd.write_line(0, "METER PAGE %d" % self.page)

    def next_page(self):
        self.page += 1


def panel(name):
    app, clock = boot(tmpdir(name))
    lcd = Lcd()
    pin = FakePin()
    buzzer = Buzzer(pin, ticks=clock)
    entry = TokenEntry(app, PagesDisplay(lcd), lcd, buzzer, version="0.1.0", ticks=clock)
    return app, clock, entry, lcd, pin


def type_keys(entry, clock, keys):
    for k in keys:
        clock.advance(200)
        entry.key(k, clock.ticks_ms())


def test_digits_are_echoed_in_threes_and_star_clears():
    app, clock, entry, lcd, _ = panel("pn_echo")
    type_keys(entry, clock, "1234567")
    assert lcd.rows == ["TOKEN", "123 456 7"]
    type_keys(entry, clock, "*")
    assert lcd.rows == ["TOKEN", ""] and entry.digits == ""
    assert group("123456789012") == "123 456 789 012"


def test_an_accepted_token_shows_the_amount_with_its_tone_then_the_meter_pages_return():
    app, clock, entry, lcd, pin = panel("pn_accept")
    start = app.ledger.balance
    type_keys(entry, clock, ADD[4][2] + "#")
    assert lcd.rows == ["TOKEN ACCEPTED", "+KES 50.00"]
    assert app.ledger.balance == start + 5000
    # the tone: the buzzer pin went on for the ACCEPT pattern's first beep
    assert pin.value() == 1 and entry.buzzer._pattern == TONES["ACCEPT"]
    clock.advance(1000)
    entry.show(app.snapshot, clock.ticks_ms())
    assert lcd.rows[0] == "TOKEN ACCEPTED" and entry.display.shown == 0  # still held
    clock.advance(HOLD_MS)
    entry.show(app.snapshot, clock.ticks_ms())
    assert lcd.rows[0] == "METER PAGE 0" and entry.display.shown == 1


def test_used_invalid_and_locked_verdicts():
    app, clock, entry, lcd, _ = panel("pn_verdicts")
    type_keys(entry, clock, ADD[0][2] + "#")
    type_keys(entry, clock, ADD[0][2] + "#")
    assert lcd.rows == ["TOKEN USED", ""] and entry.buzzer._pattern == TONES["USED"]
    for _ in range(3):
        type_keys(entry, clock, "111111111#")
        assert lcd.rows == ["INVALID TOKEN", "TRY AGAIN"]
    type_keys(entry, clock, "111111111#")
    assert lcd.rows == ["INVALID TOKEN", "LOCKED 1 MIN"]
    type_keys(entry, clock, ADD[1][2] + "#")
    assert lcd.rows == ["KEYPAD LOCKED", "WAIT 1 MIN"]
    assert entry.buzzer._pattern == TONES["LOCKED"]


def test_a_set_token_shows_the_new_balance():
    app, clock, entry, lcd, _ = panel("pn_set")
    type_keys(entry, clock, SET[2] + "#")
    assert lcd.rows == ["TOKEN ACCEPTED", "BALANCE 250.00"]


def test_short_codes():
    app, clock, entry, lcd, _ = panel("pn_codes")
    for keys, rows in (("1#", ["BALANCE", "KES 50.00"]), ("3#", ["METER NUMBER", "MTR-T1"]),
                       ("5#", ["FIRMWARE", "0.1.0"]), ("4#", ["TOKEN 1 OF 0", "NONE"]),
                       (ADD[0][2] + "#" + ADD[1][2] + "#4#", ["TOKEN 1 #4", "ADD KES 20"]),
                       ("42#", ["TOKEN 2 #2", "ADD KES 10"]), ("9#", ["UNKNOWN CODE", "9#"])):
        type_keys(entry, clock, keys)
        assert lcd.rows == rows, keys


def test_kwh_today_counts_from_local_midnight():
    app, clock, entry, lcd, _ = panel("pn_kwh")
    snap = dict(app.snapshot)
    snap["time"], snap["energy_wh"] = 1767225600, 5000  # 03:00 local on 1 January
    entry.show(snap, clock.ticks_ms())
    snap["energy_wh"] = 6250
    entry.show(snap, clock.ticks_ms())
    app.snapshot = snap
    type_keys(entry, clock, "2#")
    assert lcd.rows == ["KWH TODAY", "1.2kWh"]
    snap["time"] += 86400  # the next local day starts again from its first reading
    type_keys(entry, clock, "2#")
    assert lcd.rows == ["KWH TODAY", "0.0kWh"]


def test_a_half_typed_token_is_dropped_after_a_while_and_the_pages_come_back():
    app, clock, entry, lcd, _ = panel("pn_idle")
    type_keys(entry, clock, "123")
    clock.advance(29000)
    entry.show(app.snapshot, clock.ticks_ms())
    assert lcd.rows[0] == "TOKEN"
    clock.advance(2000)
    entry.show(app.snapshot, clock.ticks_ms())
    assert lcd.rows[0] == "METER PAGE 0" and entry.digits == ""
    type_keys(entry, clock, "A")  # the page key turns the meter's own display
    assert entry.display.page == 1
