# Display.show renders again only when something it shows changed, and the lines stay exactly
# what render() gives (the firmware's efficiency change for the simulator and the device).
from meter.display import render, Display, PAGES
from meter.drivers.lcd import Lcd1602
from support import FakeI2C


def snap(**kw):
    s = {"balance_cents": 123450, "power_w": 850, "energy_wh": 123456, "relay_closed": True,
         "alerts": {"low_balance": False, "critical_balance": False}, "online": True}
    for k in kw:
        s[k] = kw[k]
    return s


def make_display():
    i2c = FakeI2C()
    lcd = Lcd1602(i2c, sleep_ms=lambda ms: None)
    return Display(lcd), lcd, i2c, None, None


def _counting_render():
    import meter.display as display_module
    calls = [0]
    real = display_module.render

    def counting(snapshot, page=0):
        calls[0] += 1
        return real(snapshot, page)

    display_module.render = counting
    return display_module, real, calls


def test_unchanged_snapshot_is_rendered_once():
    module, real, calls = _counting_render()
    try:
        display, lcd, _, _, _ = make_display()
        for t in range(0, 10000, 1000):
            display.show(snap(), t)
        assert calls[0] == 1
        display.show(snap(power_w=851), 10000)  # same text (0.85kW), still a new render
        assert calls[0] == 2
        assert lcd.lines == ["KES 1234.50     ", "0.85kW  123.4kWh"]
    finally:
        module.render = real


def test_an_alert_raised_in_place_is_shown():
    # The app updates one alerts dict in place: the display must not compare it with itself.
    display, lcd, _, _, _ = make_display()
    s = snap()
    display.show(s, 0)
    s["alerts"]["tamper"] = True
    display.show(s, 1000)
    assert lcd.lines == ["1234.50   TAMPER", "0.85kW  123.4kWh"]
    s["alerts"]["tamper"] = False
    display.show(s, 2000)
    assert "TAMPER" not in lcd.lines[0]


def test_every_shown_field_and_the_page_rerender():
    changes = [{"balance_cents": 5}, {"power_w": 5000}, {"energy_wh": 9},
               {"relay_closed": False}, {"online": False},
               {"alerts": {"low_balance": True, "critical_balance": False}},
               {"alerts": {"low_balance": False, "critical_balance": False, "odd": 1}}]
    for change in changes:
        for page in range(PAGES):
            display, lcd, _, _, _ = make_display()
            display.page = page
            display.show(snap(), 0)
            s = snap(**change)
            display.show(s, 1000)
            assert lcd.lines == list(render(s, page)), (change, page)
    display, lcd, _, _, _ = make_display()
    display.show(snap(), 0)
    display.next_page()
    display.show(snap(), 1000)
    assert lcd.lines == list(render(snap(), 1))


def test_a_bool_is_not_taken_for_the_same_int():
    # money() shows '--' for True but '0.01' for 1: equal values of another type re-render.
    display, lcd, _, _, _ = make_display()
    display.show(snap(balance_cents=1), 0)
    display.show(snap(balance_cents=True), 1000)
    assert lcd.lines == list(render(snap(balance_cents=True), 0))


def test_a_missing_relay_field_is_not_taken_for_none():
    display, lcd, _, _, _ = make_display()
    closed = snap()
    del closed["relay_closed"]
    display.show(closed, 0)
    display.show(snap(relay_closed=None), 1000)
    assert lcd.lines == list(render(snap(relay_closed=None), 0))
    assert lcd.lines != list(render(closed, 0))


def test_lines_written_by_someone_else_are_restored_without_a_change():
    display, lcd, i2c, _, _ = make_display()
    display.show(snap(), 0)
    lcd.write_line(0, "garbage")
    display.show(snap(), 1000)
    assert lcd.lines == ["KES 1234.50     ", "0.85kW  123.4kWh"]
    lcd.init()  # e.g. re-initialised: blank
    display.show(snap(), 2000)
    assert lcd.lines == ["KES 1234.50     ", "0.85kW  123.4kWh"]
