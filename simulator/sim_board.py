# One simulated meter board: its devices wired to pin and bus numbers by a rig (the same pin map
# keys as the firmware's config), its reset and power state, watchdog, RTC and WiFi. The fake
# machine/network modules talk to the current SimBoard; the runner polls it for resets.
try:
    from simulator.devices.pzem import Pzem004t
    from simulator.devices.hd44780 import Hd44780
    from simulator.devices.s0 import S0Output
    from simulator.devices.flash import FlashFolder
    from simulator.devices.keypad import Keypad, CoverSwitch, Buzzer
    from simulator.devices.wifi import AccessPoint, Station
except ImportError:  # MicroPython: simulator/ itself is on MICROPYPATH
    from devices.pzem import Pzem004t
    from devices.hd44780 import Hd44780
    from devices.s0 import S0Output
    from devices.flash import FlashFolder
    from devices.keypad import Keypad, CoverSwitch, Buzzer
    from devices.wifi import AccessPoint, Station

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

POWER_OFF = "power_off"  # event: the mains failed, the firmware stops dead
POWER_ON = "power_on"  # event: the mains is back, the board boots (PWRON_RESET)
RESET = "reset"  # event: watchdog or machine.reset(); the board boots again

DEFAULT_RIG = {
    "pins": {"relay": 26, "s0": 34, "buzzer": 25, "cover": 35, "i2c_scl": 22, "i2c_sda": 21,
             "keypad_rows": [13, 12, 14, 27], "keypad_cols": [33, 32, 39, 36]},
    "uart": {"id": 2, "tx": 17, "rx": 16, "baudrate": 9600},
    "lcd_addr": 0x27,
    "active_low": True,
    "relay_latching": False,
    "sensor": "pzem",
    "s0_constant": 1000,
    "pzem_address": 0x01,
    "wifi": {"ssid": "mita-net", "key": "mita-pass"},
    "rtc_battery": False,
}


class BoardReset(BaseException):
    """Unwinds the firmware when the board resets (machine.reset, watchdog) or loses power.
    A BaseException so the firmware's `except Exception` cannot keep a dead board running."""

    def __init__(self, cause):
        super().__init__(cause)  # MicroPython's BaseException has no unbound __init__
        self.cause = cause


def make_rig(overrides=None):
    """DEFAULT_RIG with overrides merged one level deep (pins, uart, wifi are merged).

    The firmware's own config (meter/config.py: nested "relay", "s0", "lcd", "pzem" sections,
    wifi "password") is understood too, so a meter's config can serve as its rig.
    """
    rig = {}
    for k, v in DEFAULT_RIG.items():
        rig[k] = dict(v) if isinstance(v, dict) else v
    for k, v in (overrides or {}).items():
        if isinstance(v, dict) and isinstance(rig.get(k), dict):
            rig[k].update(v)
        else:
            rig[k] = v
    relay = rig.get("relay")
    if isinstance(relay, dict):
        rig["active_low"] = relay.get("active_low", rig["active_low"])
        rig["relay_latching"] = relay.get("latching", rig["relay_latching"])
    if "relay_active_low" in rig:
        rig["active_low"] = rig["relay_active_low"]
    for section, key, target in (("s0", "impulses_per_kwh", "s0_constant"),
                                 ("lcd", "addr", "lcd_addr"), ("pzem", "address", "pzem_address")):
        if isinstance(rig.get(section), dict) and key in rig[section]:
            rig[target] = rig[section][key]
    if "password" in rig["wifi"] and "key" not in (overrides or {}).get("wifi", {}):
        rig["wifi"]["key"] = rig["wifi"]["password"]
    if rig.get("pzem_address") == 0xF8:
        rig["pzem_address"] = 0x01  # the general address reaches any module; give it a real one
    return rig


class PinState:
    def __init__(self, number):
        self.number = number
        self.mode = None
        self.pull = None
        self.out = 0
        self.handler = None
        self.trigger = 0
        self.pin_obj = None  # the machine.Pin handed to the IRQ handler


class SimBoard:
    def __init__(self, world, flash_dir, clock, rig=None, meter_id="sim-0001", seed=1):
        self.world = world
        self.clock = clock
        self.rig = make_rig(rig)
        self.meter_id = meter_id
        self.seed = seed
        self.pzem = Pzem004t(world, self.rig["pzem_address"], seed=seed)
        self.s0 = S0Output(world, self.rig["s0_constant"])
        self.lcd = Hd44780()
        self.keypad = Keypad()
        self.cover = CoverSwitch()
        self.buzzer = Buzzer()
        self.flash = FlashFolder(flash_dir)
        wifi = self.rig["wifi"]
        self.ap = AccessPoint(wifi.get("ssid", "mita-net"), wifi.get("key", "mita-pass"))
        self.station = Station(self.ap)
        self.freq_hz = 160000000
        self.events = []  # (virtual ms, text), newest last, bounded
        self.on_event = None  # fn(kind, cause) set by the runner
        self.pending = []  # [(kind, cause)] not yet taken by the runner
        self.boots = 0
        self._rtc_offset_ms = 0
        self._timer = None
        self._loop = None
        self.cover.listeners.append(self._cover_changed)
        self.powered = world.mains_on()
        self._boot(PWRON_RESET)

    # --- life cycle ------------------------------------------------------------------------

    def _boot(self, cause):
        self.reset_cause = cause
        self.boots += 1
        self.pins = {}
        self.wdt_timeout = None
        self.wdt_fed_ms = None
        self.station.active = False
        self.station.request = None
        self.uart_rx = {}  # uart id -> bytearray
        if cause == PWRON_RESET and not self.rig.get("rtc_battery"):
            # No backup battery: the RTC restarts at 2000-01-01 with the chip.
            self._rtc_offset_ms = 946684800000 - self.clock.epoch_ms()
        if not self.rig.get("relay_latching"):
            self.world.set_relay(False)  # a plain relay module drops out while GPIOs float
        self.log("boot, reset cause %d" % cause)

    def log(self, text):
        self.events.append((self.clock.now_ms(), text))
        if len(self.events) > 200:
            del self.events[:100]

    def _emit(self, kind, cause):
        self.pending.append((kind, cause))
        self.log("%s (%s)" % (kind, cause))
        if self.on_event is not None:
            self.on_event(kind, cause)

    def take_events(self):
        out, self.pending = self.pending, []
        return out

    def reset(self, cause):
        """A reset from inside (machine.reset, watchdog): the board boots again at once."""
        self._boot(cause)
        self._emit(RESET, cause)

    def check_alive(self):
        if self.powered and not self.world.mains_on():
            self.poll()  # the cut happened since the last poll: the board is already dead
        if not self.powered:
            raise BoardReset(POWER_OFF)

    # --- the runner's heartbeat --------------------------------------------------------------

    def poll(self):
        """Bring the hardware up to now: power changes, watchdog, S0 pulses. Call it every
        virtual tick, or attach(loop) to have it called exactly when something is due."""
        now = self.clock.now_ms()
        on = self.world.mains_on(now)
        if on != self.powered:
            self.powered = on
            if on:
                self._boot(PWRON_RESET)
                self._emit(POWER_ON, PWRON_RESET)
            else:
                self.pins = {}
                self.wdt_timeout = None
                self._emit(POWER_OFF, None)
        if not self.powered:
            return
        if self.wdt_timeout is not None and now - self.wdt_fed_ms >= self.wdt_timeout:
            self.reset(WDT_RESET)
        self._deliver_pulses(now)

    def _deliver_pulses(self, now):
        pin = self.rig["pins"].get("s0")
        due = self.s0.pulses_due()
        for _ in range(due):
            self.s0.take_pulse(now)
            st = self.pins.get(pin)
            if st is not None and st.handler is not None and st.trigger & 2:
                st.handler(st.pin_obj)

    def next_due_ms(self):
        """The next virtual instant poll() has something to do (None: nothing foreseeable)."""
        cands = [self.world.next_event_ms(), self.ap.next_change(self.clock.now_ms())]
        if self.powered:
            cands.append(self.s0.next_pulse_ms())
            if self.wdt_timeout is not None:
                cands.append(self.wdt_fed_ms + self.wdt_timeout)
        cands = [c for c in cands if c is not None]
        return min(cands) if cands else None

    def attach(self, loop):
        """Schedule poll() on an asyncio loop at every instant something is due (CPython)."""
        self._loop = loop
        self.kick()

    def detach(self):
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._loop = None

    def kick(self):
        """Something changed (relay, load, a feed): recompute when poll() is next due."""
        loop = self._loop
        if loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        due = self.next_due_ms()
        if due is None:
            self._timer = None
            return
        self._timer = loop.call_at(max(due, self.clock.now_ms()) / 1000.0, self._on_timer)

    def _on_timer(self):
        self._timer = None
        self.poll()
        self.kick()

    # --- what the fake machine module calls --------------------------------------------------

    def pin_setup(self, number, mode, pull, value, pin_obj):
        st = self.pins.get(number)
        if st is None:
            st = self.pins[number] = PinState(number)
        if mode is not None:
            st.mode = mode
        if pull is not None:
            st.pull = pull
        st.pin_obj = pin_obj
        if value is not None:
            self.pin_write(number, value)
        return st

    def pin_write(self, number, value):
        self.check_alive()
        v = 1 if value else 0
        st = self.pins.get(number) or self.pin_setup(number, None, None, None, None)
        st.out = v
        pins = self.rig["pins"]
        active = v == 0 if self.rig.get("active_low") else v == 1
        two_coils = self.rig.get("relay_latching") and pins.get("relay_reset", -1) >= 0
        if number == pins.get("relay"):
            # A bistable relay closes on a pulse of its set coil; a plain one follows the pin.
            if active or not two_coils:
                self.world.set_relay(active)
                self.kick()
        elif two_coils and number == pins.get("relay_reset"):
            if active:
                self.world.set_relay(False)
                self.kick()
        elif number == pins.get("buzzer"):
            self.buzzer.drive(v, self.clock.now_ms())

    def pin_read(self, number):
        self.check_alive()
        pins = self.rig["pins"]
        now = self.clock.now_ms()
        if number == pins.get("s0"):
            self.poll()
            return self.s0.level(now)
        if number == pins.get("cover"):
            return self.cover.level()
        cols = pins.get("keypad_cols") or []
        if number in cols:
            rows = [self._out_level(r) for r in pins.get("keypad_rows") or []]
            return self.keypad.column_level(cols.index(number), rows, now)
        st = self.pins.get(number)
        if st is not None and st.mode == 3:  # Pin.OUT reads back its latch
            return st.out
        return 1 if st is not None and st.pull == 2 else 0

    def _out_level(self, number):
        st = self.pins.get(number)
        return 1 if st is None or st.mode != 3 else st.out

    def pin_irq(self, number, handler, trigger):
        st = self.pins.get(number) or self.pin_setup(number, None, None, None, None)
        st.handler = handler
        st.trigger = trigger
        self.kick()

    def _cover_changed(self, level):
        st = self.pins.get(self.rig["pins"].get("cover"))
        if st is None or st.handler is None or not self.powered:
            return
        if st.trigger & (1 if level else 2):  # IRQ_RISING=1, IRQ_FALLING=2
            st.handler(st.pin_obj)

    def uart_exchange(self, uart_id, settings, buf):
        """Bytes the firmware wrote; returns the bytes that come back (maybe none)."""
        self.check_alive()
        want = self.rig["uart"]
        if uart_id != want["id"] or self.rig.get("sensor", "pzem") != "pzem":
            return b""
        for key in ("tx", "rx", "baudrate"):
            if settings.get(key) is not None and settings.get(key) != want.get(key, 9600):
                return b""  # miswired or wrong speed: the module hears noise and stays silent
        if settings.get("bits", 8) != 8 or settings.get("parity") is not None:
            return b""
        return self.pzem.handle(buf) or b""

    def i2c_devices(self, scl, sda):
        pins = self.rig["pins"]
        if scl != pins.get("i2c_scl") or sda != pins.get("i2c_sda"):
            return []
        return [self.rig["lcd_addr"]]

    def i2c_write(self, scl, sda, addr, buf):
        self.check_alive()
        if addr not in self.i2c_devices(scl, sda):
            raise OSError(19)  # ENODEV: no device acknowledged, as on the ESP32
        self.lcd.i2c_write(buf)

    def i2c_read(self, scl, sda, addr, n):
        self.check_alive()
        if addr not in self.i2c_devices(scl, sda):
            raise OSError(19)
        return self.lcd.i2c_read(n)

    def wdt_start(self, timeout_ms):
        self.wdt_timeout = max(1, int(timeout_ms))
        self.wdt_fed_ms = self.clock.now_ms()
        self.kick()

    def wdt_feed(self):
        self.check_alive()
        if self.wdt_timeout is not None:
            self.wdt_fed_ms = self.clock.now_ms()
            # A feed only moves the deadline later, so a timer already armed is due no later
            # than poll() needs; it re-arms itself when it fires. Re-arming here, once per tick
            # per meter, left a cancelled timer in the loop's heap every time.
            if self._timer is None:
                self.kick()

    def rtc_epoch_ms(self):
        return self.clock.epoch_ms() + self._rtc_offset_ms

    def rtc_set_epoch_ms(self, epoch_ms):
        self._rtc_offset_ms = epoch_ms - self.clock.epoch_ms()

    def unique_id(self):
        h = 5381
        for ch in self.meter_id:
            h = (h * 33 + ord(ch)) & 0xFFFFFFFFFFFF
        return bytes([(h >> (8 * i)) & 0xFF for i in range(6)])

    def adc_u16(self, pin):
        return int(self.rig.get("adc", {}).get(pin, 0))
