# The board: the one module that touches `machine`, building every driver from the config's
# pin map. Everything else is handed what it builds here.
import machine

from meter.clock import Clock
from meter.drivers.relay import Relay


def make_clock(config):
    """The wall clock comes first at boot: the app needs it before the board exists."""
    return Clock(machine.RTC(), config["utc_offset_min"] * 60)


def reset_after(ms):
    """A boot that failed leaves nothing running, not even the watchdog: wait (Ctrl-C reaches
    the REPL meanwhile), then reset and try again."""
    import time
    time.sleep_ms(ms)
    machine.reset()


def unique_id():
    # Letters and digits only: the cloud's canonical meter number has no separators.
    return "".join("%02X" % b for b in machine.unique_id())


class NoCover:
    """Stands in for a cover switch the meter does not have."""

    def value(self):
        return 0


class Board:
    def __init__(self, config, relay_closed=False, clock=None, log=None):
        self.config = config
        self.log = log
        pins = config["pins"]
        self.clock = clock or make_clock(config)
        self.relay = self._make_relay(config["relay"], pins, relay_closed)
        self.sensor = self._make_sensor(config, pins)
        self.buzzer = None
        self.lcd = None  # the LCD driver itself, for the token panel (meter.token_entry)
        if pins["buzzer"] >= 0:
            from meter.drivers.buzzer import Buzzer
            self.buzzer = Buzzer(machine.Pin(pins["buzzer"], machine.Pin.OUT, value=0))
        self.display = self._make_display(config, pins)
        cover = config["cover"]
        self._cover_open_level = cover["open_level"]
        self._cover = NoCover()
        if cover["enabled"] and pins["cover"] >= 0:
            self._cover = machine.Pin(pins["cover"], machine.Pin.IN, machine.Pin.PULL_UP)
            self._cover_open_level = cover["open_level"]
        self.keypad = None
        if pins["keypad_rows"] and pins["keypad_cols"]:
            from meter.drivers.keypad import Keypad
            rows = [machine.Pin(n, machine.Pin.OUT, value=1) for n in pins["keypad_rows"]]
            cols = [machine.Pin(n, machine.Pin.IN, machine.Pin.PULL_UP) for n in pins["keypad_cols"]]
            self.keypad = Keypad(rows, cols)

    def _make_relay(self, rc, pins, closed):
        # The pin is created at the level the persisted state asks for: no flicker at boot.
        level = Relay.level_for(closed, rc["active_low"])
        if rc["latching"]:
            # A bistable relay keeps its contacts without power: both coils rest inactive.
            idle = 1 if rc["active_low"] else 0
            set_pin = machine.Pin(pins["relay"], machine.Pin.OUT, value=idle)
            reset_pin = machine.Pin(pins["relay_reset"], machine.Pin.OUT, value=idle)
            # Where the contacts are is not known for sure (a cut mid-pulse, a lost state, a
            # hand on the lever), and a latching relay cannot be read back: one pulse to the
            # side wanted. Contacts already there do not move, so this is no flicker.
            relay = Relay(set_pin, active_low=rc["active_low"], latching=True,
                          reset_pin=reset_pin, pulse_ms=rc["pulse_ms"], closed=None)
            relay.set(closed)
            return relay
        pin = machine.Pin(pins["relay"], machine.Pin.OUT, value=level)
        return Relay(pin, active_low=rc["active_low"])

    def _make_sensor(self, config, pins):
        if config["sensor"] == "s0":
            from meter.drivers.s0 import S0Counter
            pin = machine.Pin(pins["s0"], machine.Pin.IN, machine.Pin.PULL_UP)
            s0 = config["s0"]
            return S0Counter(pin, impulses_per_kwh=s0["impulses_per_kwh"],
                             debounce_ms=s0["debounce_ms"])
        from meter.drivers.pzem004t import Pzem004t
        u = config["uart"]
        uart = machine.UART(u["id"], baudrate=9600, bits=8, parity=None, stop=1,
                            tx=u["tx"], rx=u["rx"], timeout=u["timeout_ms"])
        pz = config["pzem"]
        return Pzem004t(uart, address=pz["address"], retries=pz["retries"], log=self.log)

    def _make_display(self, config, pins):
        lcd_cfg = config["lcd"]
        if not lcd_cfg["enabled"]:
            return None
        i2c = machine.I2C(0, scl=machine.Pin(pins["i2c_scl"]), sda=machine.Pin(pins["i2c_sda"]),
                          freq=100000)
        if lcd_cfg["addr"] not in i2c.scan():
            if self.log:
                self.log.warn("no LCD at I2C address 0x%02x", lcd_cfg["addr"])
            return None
        from meter.drivers.lcd import Lcd1602
        from meter.display import Display
        try:
            lcd = Lcd1602(i2c, addr=lcd_cfg["addr"])
        except OSError as exc:
            # A flaky display must never stop the meter from metering.
            if self.log:
                self.log.warn("LCD init failed: %s", exc)
            return None
        self.lcd = lcd
        return Display(lcd, self.buzzer)

    def cover_open(self):
        return self._cover.value() == self._cover_open_level

    def watchdog(self, timeout_ms):
        # Once started the ESP32 watchdog cannot be stopped: created only when the app runs.
        return machine.WDT(timeout=timeout_ms)

    def reset_cause(self):
        return machine.reset_cause()

    def wlan(self):
        """The station interface, or None when the meter has no WiFi configured."""
        if not self.config["wifi"]["ssid"]:
            return None
        import network
        return network.WLAN(network.STA_IF)

    def ntp(self):
        """The port's SNTP client module (frozen into the ESP32 firmware)."""
        try:
            import ntptime
        except ImportError:
            return None
        return ntptime
