# micropython-heap: 192k (the app and the LCD, display and buzzer modules: their bytecode and the
# 64-bit port's double-size objects live in this heap; the ESP32 runs bytecode from flash)
# The LCD and the buzzer driven by the app's ticks, on the app test board (appfakes.py).
from meter import config as meter_config
from meter.app import MeterApp
from meter.display import Display
from meter.drivers.buzzer import Buzzer
from meter.drivers.lcd import Lcd1602
from meter.storage import StateStore
from appfakes import FakeBoard, ManualClock
from support import FakeI2C, FakePin, tmpdir


class QuietI2C(FakeI2C):
    """FakeI2C that counts writes instead of keeping them: minutes of ticks would fill the
    capped MicroPython heap, and lcd.lines says what the panel shows."""

    def __init__(self):
        FakeI2C.__init__(self)
        self.count = 0

    def writeto(self, addr, buf, stop=True):
        if addr not in self.devices:
            raise OSError(19)
        self.count += 1
        return 1


def run(app, clock, n):
    for _ in range(n):
        clock.advance(1000)
        app.tick()


def test_the_lcd_and_buzzer_follow_the_ticks_and_an_unplugged_lcd_stops_nothing():
    cfg, _ = meter_config.from_dict({
        "initial_balance_cents": 10500,  # just above the KES 100 low threshold
        "tariff": {"version": 1, "bands": [{"rate": 2500}]}})
    clock = ManualClock()
    app = MeterApp(cfg, StateStore(tmpdir("rv_lcd")), clock)
    board = FakeBoard(clock, app.relay_at_boot())
    i2c = QuietI2C()
    buzzer_pin = FakePin()
    buzzer = Buzzer(buzzer_pin, ticks=clock)
    lcd = Lcd1602(i2c, sleep_ms=lambda ms: None)
    board.display = Display(lcd, buzzer)
    app.attach(board)
    app.online = True  # as the cloud link sets it; offline shows NO NET instead of the KES
    run(app, clock, 1)
    assert lcd.lines[0] == "KES 105.00      "
    board.sensor.power_w = 3600  # 2.5 cents a second at KES 25/kWh
    run(app, clock, 60)
    assert app.ledger.balance == 10350 and not app.snapshot["alerts"]["low_balance"]
    run(app, clock, 140)
    assert app.ledger.balance == 10000 and app.snapshot["alerts"]["low_balance"]
    assert buzzer_pin.history.count(1) == 1  # beeped once on turning low...
    run(app, clock, 1)
    assert buzzer_pin.value() == 0  # ...and stopped, on the ticks alone
    i2c.devices = []  # the LCD cable falls out
    billed = app.energy.total_wh
    run(app, clock, 5)
    assert app.energy.total_wh == billed + 5 and board.display.lcd_errors == 5
    i2c.devices = [0x27]
    run(app, clock, 1)
    assert lcd.lines[0] == "KES 99.83    LOW"  # 207 Wh at 2.5 cents: 517 cents gone
