from meter.display import render, status, money, power, energy, low_level, Display, PAGES
from meter.drivers.lcd import Lcd1602
from meter.drivers.buzzer import Buzzer
from meter.log import Logger
from support import FakeI2C, FakePin


def snap(**kw):
    s = {"balance_cents": 123450, "power_w": 850, "energy_wh": 123456, "relay_closed": True,
         "alerts": {"low_balance": False, "critical_balance": False}, "online": True}
    for k in kw:
        s[k] = kw[k]
    return s


def check_lines(lines):
    assert len(lines) == 2
    for line in lines:
        assert len(line) == 16, repr(line)


def test_overview_page():
    lines = render(snap())
    check_lines(lines)
    assert lines == ("KES 1234.50     ", "0.85kW  123.4kWh")


def test_every_page_is_two_16_char_lines_for_every_odd_snapshot():
    odd = [snap(), snap(balance_cents=None, power_w=None, energy_wh=None),
           snap(balance_cents=-10**15, power_w=-10**9, energy_wh=10**14),
           snap(alerts={}, online=False, relay_closed=False), {}]
    for s in odd:
        for page in range(PAGES + 2):
            check_lines(render(s, page))


def test_money_formatting():
    assert money(0) == "0.00"
    assert money(5) == "0.05"
    assert money(-5) == "-0.05"
    assert money(-1230) == "-12.30"
    assert money(123450, False) == "1234"
    assert money(-1250, False) == "-12"
    assert money(-50, False) == "0"
    assert money(None) == "--"
    assert money(True) == "--"


def test_power_formatting_rounds_and_switches_units():
    assert power(0) == "0.00kW"
    assert power(4) == "0.00kW"
    assert power(5) == "0.01kW"
    assert power(850) == "0.85kW"
    assert power(9994) == "9.99kW"
    assert power(9996) == "10.0kW"
    assert power(23000) == "23.0kW"
    assert power(99960) == "100kW"
    assert power(-850) == "-0.85kW"
    assert power(None) == "--kW"


def test_energy_formatting_cuts_and_switches_units():
    assert energy(0) == "0.0kWh"
    assert energy(99) == "0.0kWh"
    assert energy(123456) == "123.4kWh"
    assert energy(9999999) == "9999.9kWh"
    assert energy(10000000) == "10000kWh"
    assert energy(999999999) == "999999kWh"
    assert energy(1000000000) == "1000MWh"
    assert energy(None) == "--kWh"


def test_negative_balance_under_friendly_hours_shows_the_debt_and_low():
    # Friendly hours keep the load on below zero: the debt shows, the relay is still closed.
    s = snap(balance_cents=-1230, alerts={"low_balance": True, "critical_balance": True})
    line1, line2 = render(s)
    assert line1 == "KES -12.30   LOW"
    assert line2 == "0.85kW  123.4kWh"


def test_zero_balance_with_the_relay_open_is_cut():
    s = snap(balance_cents=0, relay_closed=False, power_w=0)
    assert render(s)[0] == "KES 0.00     CUT"
    assert render(s)[1] == "0.00kW  123.4kWh"


def test_relay_open_with_credit_is_off():
    assert status(snap(relay_closed=False)) == "OFF"


def test_huge_balance_drops_the_prefix_then_the_cents():
    assert render(snap(balance_cents=123456789012))[0] == "1234567890.12   "
    low = {"low_balance": True}
    assert render(snap(balance_cents=123456789012, alerts=low))[0] == "1234567890   LOW"
    assert render(snap(balance_cents=12345678901, alerts=low))[0] == "123456789.01 LOW"
    # no room for even the whole shillings next to a long flag: an honest "more than"
    assert render(snap(balance_cents=123456789012, alerts={"tamper": True}))[0] == \
        ">99999999 TAMPER"


def test_absurd_balance_still_shows_the_flag():
    line1 = render(snap(balance_cents=10**20, alerts={"overload": True}))[0]
    assert line1.endswith(" OVLD")
    assert line1.startswith(">999")
    assert len(line1) == 16
    assert render(snap(balance_cents=-10**20))[0] == "->9999999999 LOW"


def test_no_reading_shows_dashes():
    s = snap(power_w=None, alerts={"sensor_fault": True})
    assert render(s) == ("1234.50   SENSOR", "--kW    123.4kWh")


def test_status_priorities():
    assert status(snap()) == ""
    assert status(snap(online=False)) == "NO NET"
    assert status(snap(alerts={"low_balance": True}, online=False)) == "LOW"
    assert status(snap(alerts={"something_new": True})) == "ALERT"
    assert status(snap(alerts={"state_corrupt": True})) == "ERR"
    assert status(snap(alerts={"overload": True}, relay_closed=False)) == "OVLD"
    assert status(snap(alerts={"lockout": True, "overload": True})) == "LOCK"
    assert status(snap(alerts={"tamper_bypass": True, "lockout": True},
                       relay_closed=False)) == "TAMPER"
    assert status(snap(alerts={"low_balance": False})) == ""


def test_balance_page():
    assert render(snap(alerts={"low_balance": True}), 1) == ("Balance      LOW",
                                                             "KES 1234.50     ")


def test_energy_page():
    assert render(snap(power_w=2300), 2) == ("Power     2.30kW", "Total   123.4kWh")


def test_alerts_page():
    s = snap(alerts={"tamper_cover": True, "tamper_bypass": True, "low_balance": True,
                     "mystery": True}, relay_closed=False, online=False)
    assert render(s, 3) == ("TAMPER LOW ALERT", "Load OFF  Net --")
    assert render(snap(), 3) == ("No alerts       ", "Load ON   Net OK")


def test_pages_wrap_around():
    assert render(snap(), PAGES) == render(snap(), 0)
    assert render(snap(), -1) == render(snap(), PAGES - 1)


def test_low_levels():
    assert low_level(snap()) == 0
    assert low_level(snap(alerts={"low_balance": True})) == 1
    assert low_level(snap(alerts={"low_balance": True, "critical_balance": True})) == 2
    assert low_level(snap(balance_cents=0, alerts={})) == 2


class Ticks:
    def ticks_diff(self, a, b):
        return a - b


def make_display():
    i2c = FakeI2C()
    lcd = Lcd1602(i2c, sleep_ms=lambda ms: None)
    buzzer_pin = FakePin()
    buzzer = Buzzer(buzzer_pin, ticks=Ticks())
    return Display(lcd, buzzer, low_beep_ms=150), lcd, i2c, buzzer, buzzer_pin


def test_show_writes_both_lines():
    display, lcd, i2c, _, _ = make_display()
    display.show(snap(), 0)
    assert lcd.lines == ["KES 1234.50     ", "0.85kW  123.4kWh"]


def test_show_every_second_without_change_does_not_touch_the_bus():
    display, lcd, i2c, _, _ = make_display()
    display.show(snap(), 0)
    n = len(i2c.writes)
    for t in range(1000, 10000, 1000):
        display.show(snap(), t)
    assert len(i2c.writes) == n


def test_beeps_once_on_entering_low_not_every_second():
    display, lcd, i2c, buzzer, pin = make_display()
    display.show(snap(), 0)
    assert not buzzer.busy
    low = snap(alerts={"low_balance": True})
    display.show(low, 1000)
    assert buzzer.busy and pin.value() == 1
    buzzer.update(1150)
    assert not buzzer.busy
    for t in range(2000, 10000, 1000):
        display.show(low, t)
        assert not buzzer.busy
    # going critical is a new, longer alarm
    display.show(snap(balance_cents=0, alerts={"low_balance": True,
                                               "critical_balance": True}), 11000)
    assert buzzer.busy
    buzzer.off()
    # a recharge clears it; the next time it runs low it beeps again
    display.show(snap(), 12000)
    display.show(low, 13000)
    assert buzzer.busy


def test_booting_already_low_beeps_once():
    display, _, _, buzzer, _ = make_display()
    display.show(snap(alerts={"low_balance": True}), 0)
    assert buzzer.busy


def test_next_page_cycles():
    display, lcd, _, _, _ = make_display()
    seen = [display.next_page() for _ in range(PAGES)]
    assert seen == [1, 2, 3, 0]
    display.page = 2
    display.show(snap(), 0)
    assert lcd.lines[0].startswith("Power")


def test_a_broken_lcd_does_not_stop_the_meter():
    display, lcd, i2c, _, _ = make_display()
    lines = []
    display._log = Logger("m", sink=lines.append)
    i2c.devices = []
    display.show(snap(), 0)
    display.show(snap(), 1000)
    assert display.lcd_errors == 2
    assert len(lines) == 1
    i2c.devices = [0x27]
    display.show(snap(), 2000)
    assert lcd.lines[0] == "KES 1234.50     "


def test_without_lcd_or_buzzer():
    d = Display(None, None)
    d.show(snap(alerts={"low_balance": True}), 0)


def test_a_beep_ends_on_the_display_updates_alone():
    # Nothing but show() runs the buzzer: a beep that only ended on buzzer.update() calls from
    # elsewhere would sound for ever on the meter.
    display, _, _, buzzer, pin = make_display()
    display.show(snap(), 0)
    low = snap(alerts={"low_balance": True})
    display.show(low, 1000)
    assert buzzer.busy and pin.value() == 1
    display.show(low, 2000)
    assert not buzzer.busy and pin.value() == 0


def test_an_lcd_back_after_a_bus_error_is_initialised_again():
    display, lcd, i2c, _, _ = make_display()
    display.show(snap(), 0)
    i2c.devices = []  # unplugged: the panel loses power and forgets its 4-bit mode
    display.show(snap(balance_cents=100), 1000)
    i2c.devices = [0x27]
    i2c.writes = []
    display.show(snap(balance_cents=100), 2000)
    sent = [buf for _, buf in i2c.writes]
    # E low with the backlight, then the 0x3 nibble latched three times: the init sequence
    assert sent[0] == bytes((0x08,))
    assert sent[1] == bytes((0x3C, 0x38))
    assert lcd.lines[0] == "KES 1.00        "
    n = len(i2c.writes)
    display.show(snap(balance_cents=100), 3000)
    assert len(i2c.writes) == n  # initialised once, not on every update after
