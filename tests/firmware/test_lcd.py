from meter.drivers.lcd import Lcd1602, LcdError
from support import FakeI2C, raises

INIT = [
    b"\x08",  # backlight on, E low
    b"\x3c\x38", b"\x3c\x38", b"\x3c\x38",  # nibble 0x3 three times
    b"\x2c\x28",  # nibble 0x2: 4-bit mode
    b"\x2c\x28\x8c\x88",  # 0x28 function set
    b"\x0c\x08\xcc\xc8",  # 0x0C display on
    b"\x0c\x08\x1c\x18",  # 0x01 clear
    b"\x0c\x08\x6c\x68",  # 0x06 entry mode
]


class Sleeps:
    def __init__(self):
        self.calls = []

    def __call__(self, ms):
        self.calls.append(ms)


def make(**kwargs):
    i2c = FakeI2C(devices=(0x27, 0x3F))
    sleep = Sleeps()
    lcd = Lcd1602(i2c, sleep_ms=sleep, **kwargs)
    return lcd, i2c, sleep


def sent(i2c, start=0):
    return [buf for _, buf in i2c.writes[start:]]


def test_init_byte_sequence():
    lcd, i2c, sleep = make()
    assert sent(i2c) == INIT
    assert all(addr == 0x27 for addr, _ in i2c.writes)
    assert sleep.calls == [50, 5, 1, 1, 1, 2]
    assert lcd.lines == [" " * 16, " " * 16]


def test_other_address():
    i2c = FakeI2C(devices=(0x3F,))
    Lcd1602(i2c, addr=0x3F, sleep_ms=Sleeps())
    assert [a for a, _ in i2c.writes] == [0x3F] * len(INIT)


def test_missing_device_raises_oserror():
    raises(OSError, Lcd1602, FakeI2C(devices=()), sleep_ms=Sleeps())


def test_write_line_sends_cursor_then_characters():
    lcd, i2c, _ = make()
    assert lcd.write_line(0, "Hi") is True
    assert sent(i2c, len(INIT)) == [
        b"\x8c\x88\x0c\x08"  # cursor 0x80: row 0, column 0
        b"\x4d\x49\x8d\x89"  # 'H' 0x48 with RS
        b"\x6d\x69\x9d\x99"  # 'i' 0x69 with RS
    ]
    assert lcd.lines[0] == "Hi" + " " * 14


def test_second_row_starts_at_0x40():
    lcd, i2c, _ = make()
    lcd.write_line(1, "A")
    assert sent(i2c, len(INIT)) == [b"\xcc\xc8\x0c\x08\x4d\x49\x1d\x19"]


def test_unchanged_line_is_not_rewritten():
    lcd, i2c, _ = make()
    lcd.write_line(0, "KES 100.00")
    before = len(i2c.writes)
    assert lcd.write_line(0, "KES 100.00") is False
    assert lcd.write_line(0, "KES 100.00      ") is False
    assert len(i2c.writes) == before


def test_only_the_changed_span_is_sent():
    lcd, i2c, _ = make()
    lcd.write_line(0, "KES 100.00")
    lcd.write_line(0, "KES 109.50")
    cmd = sent(i2c)[-1]
    assert cmd[:4] == b"\x8c\x88\x6c\x68"  # cursor 0x86: column 6
    assert len(cmd) == 4 * (1 + 3)  # "9.5" only
    assert lcd.lines[0] == "KES 109.50      "


def test_full_line_is_one_transfer():
    lcd, i2c, _ = make()
    lcd.write_line(1, "x" * 16)
    assert len(sent(i2c)[-1]) == 4 * 17


def test_pads_and_truncates_to_the_width():
    lcd, _, _ = make()
    lcd.write_line(0, "0123456789abcdefXYZ")
    lcd.write_line(1, "")
    assert lcd.lines == ["0123456789abcdef", " " * 16]


def test_shorter_text_blanks_the_rest_of_the_line():
    lcd, i2c, _ = make()
    lcd.write_line(0, "LONG TEXT")
    lcd.write_line(0, "AB")
    assert lcd.lines[0] == "AB" + " " * 14
    assert sent(i2c)[-1][:4] == b"\x8c\x88\x0c\x08"


def test_non_ascii_and_missing_glyphs_show_as_question_marks():
    lcd, i2c, _ = make()
    lcd.write_line(0, "Sh\u00e9 \u20ac5\\~\x07")
    assert lcd.lines[0] == "Sh? ?5???" + " " * 7


def test_bad_row_is_rejected():
    lcd, _, _ = make()
    raises(LcdError, lcd.write_line, 2, "x")
    raises(LcdError, lcd.write_line, -1, "x")


def test_clear_sends_0x01_and_forgets_the_lines():
    lcd, i2c, sleep = make()
    lcd.write_line(0, "abc")
    lcd.clear()
    assert sent(i2c)[-1] == b"\x0c\x08\x1c\x18"
    assert sleep.calls[-1] == 2
    assert lcd.lines[0] == " " * 16
    n = len(i2c.writes)
    lcd.write_line(0, "abc")
    assert len(i2c.writes) == n + 1


def test_backlight_off_clears_bit_3_in_every_later_byte():
    lcd, i2c, _ = make()
    lcd.backlight(False)
    assert sent(i2c)[-1] == b"\x00"
    assert lcd.backlight_on is False
    lcd.write_line(0, "A")
    assert all(b & 0x08 == 0 for b in sent(i2c)[-1])
    lcd.backlight(True)
    assert sent(i2c)[-1] == b"\x08"


def test_failed_write_is_retried_next_time():
    lcd, i2c, _ = make()
    i2c.devices = []
    raises(OSError, lcd.write_line, 0, "abc")
    assert lcd.lines[0] == " " * 16
    i2c.devices = [0x27]
    assert lcd.write_line(0, "abc") is True


def test_20x4_row_addresses():
    lcd, i2c, _ = make(cols=20, rows=4)
    for row, cursor in ((2, 0x94), (3, 0xD4)):
        lcd.write_line(row, "z")
        hi, lo = cursor & 0xF0, (cursor << 4) & 0xF0
        assert sent(i2c)[-1][:4] == bytes((hi | 0x0C, hi | 0x08, lo | 0x0C, lo | 0x08))


def test_bad_size_is_rejected():
    raises(LcdError, Lcd1602, FakeI2C(), cols=0, sleep_ms=Sleeps())
    raises(LcdError, Lcd1602, FakeI2C(), rows=5, sleep_ms=Sleeps())


def test_rewriting_what_is_shown_sends_nothing_however_it_was_fitted():
    lcd, i2c, _ = make()
    lcd.write_line(0, "Sh\u00e9 \u20ac5\\~\x07")
    shown = lcd.lines[0]
    before = len(i2c.writes)
    assert lcd.write_line(0, shown) is False  # the very text on the display
    assert lcd.write_line(0, "Sh\u00e9 \u20ac5\\~\x07") is False  # fits to the same
    assert lcd.write_line(0, "Sh? ?5???") is False
    assert len(i2c.writes) == before
    assert lcd.write_line(0, shown[:-1] + "x") is True
    assert lcd.lines[0] == "Sh? ?5???      x"
