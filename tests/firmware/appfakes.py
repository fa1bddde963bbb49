# Fakes for app-level firmware tests: a board with a scripted sensor, a relay on a fake pin
# and a manual clock. Both interpreters run these.
from meter import config as meter_config
from meter.drivers.reading import Reading
from meter.drivers.reading import TIMEOUT, SensorError
from meter.drivers.relay import Relay
from support import FakePin


class ManualClock:
    """ticks and wall time that only move when the test says so."""

    def __init__(self, t=1767225600):  # 2026-01-01 00:00 UTC
        self.ms = 0
        self.t = t
        self.utc_offset_s = 10800

    def advance(self, ms):
        self.ms += ms
        self.t += ms // 1000

    def ticks_ms(self):
        return self.ms

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b

    def now(self):
        return self.t

    def valid(self):
        return self.t >= 1704067200

    def not_before(self, t):
        if t and self.t < t:
            self.t = t


class FakeSensor:
    """A PZEM-like counter sensor: the test sets power; each read advances the counter by the
    energy used since the last read, in whole Wh with the fraction carried (as the module
    does)."""

    counts_per_kwh = 1000

    def __init__(self, clock, counter=0):
        self.clock = clock
        self.counter = counter
        self.power_w = 0
        self.silent = False
        self.load_connected = None  # a relay to follow: no power flows while it is open
        self._mws = 0  # milliwatt-seconds... kept as W*ms
        self._last_ms = clock.ticks_ms()

    def _integrate(self):
        now = self.clock.ticks_ms()
        power = self.power_w
        if self.load_connected is not None and not self.load_connected.is_closed():
            power = 0
        self._mws += power * (now - self._last_ms)
        self._last_ms = now
        wh = self._mws // 3600000
        self._mws -= wh * 3600000
        self.counter += wh
        return power

    def read(self):
        power = self._integrate()
        if self.silent:
            raise SensorError(TIMEOUT, "no reply")
        r = Reading()
        r.energy = self.counter
        r.power_dw = power * 10
        r.voltage_dv = 2300
        return r


class FakeBoard:
    def __init__(self, clock, relay_closed, counter=0):
        self.clock = clock
        self.relay_pin = FakePin(Relay.level_for(relay_closed, True))
        self.initial_level = self.relay_pin.value()
        self.relay = Relay(self.relay_pin, active_low=True)
        self.sensor = FakeSensor(clock, counter)
        self.sensor.load_connected = self.relay
        self.display = None
        self.cover = 0

    def cover_open(self):
        return self.cover == 1

    def watchdog(self, timeout_ms):
        return None

    def reset_cause(self):
        return 1


def make_config(**over):
    cfg, _ = meter_config.from_dict({
        "meter_id": "MTR-T1",
        "initial_balance_cents": 5000,  # KES 50
        "tariff": {"version": 1, "bands": [{"rate": 2500}], "vat_bp": 0},  # KES 25/kWh
        "thresholds": {"low_cents": 2000, "critical_cents": 500},
        "policy": {"min_switch_s": 10},
        "persist_interval_s": 60,
    })
    for k in over:
        cfg[k] = over[k]
    return cfg


# The device key the link tests provision their meters with (config["key"]): the test clouds
# sign commands with command_key(LINK_DEVICE_KEY, meter_id).
LINK_DEVICE_KEY = "dk_link_tests"


def linked_meter(root, meter_id, host, port, password, balance_cents, tariff=None,
                 backoff_ms=(10, 50), device_key=LINK_DEVICE_KEY, token=None):
    """A booted MeterApp on a FakeBoard with its cloud link and MQTT client, state under
    root, for the link tests: returns (app, link, client). token: the config's "token"
    entry (keypad tokens), as provisioning writes it."""
    # Imported here: firmware tests that only need the fakes above run under a capped heap.
    from meter.app import MeterApp
    from meter.link import make_link
    from meter.storage import StateStore
    given = {
        "meter_id": meter_id, "initial_balance_cents": balance_cents,
        "tariff": tariff or {"version": 1, "bands": [{"rate": 2500}], "vat_bp": 0},
        "mqtt": {"host": host, "port": port, "user": meter_id, "password": password},
        "key": device_key,
        "policy": {"min_switch_s": 0}, "persist_interval_s": 3600}
    if token:  # no ** in a dict display: this file also runs under MicroPython
        given["token"] = token
    cfg, _ = meter_config.from_dict(given)
    clock = ManualClock(1767225600)
    app = MeterApp(cfg, StateStore(root), clock)
    app.attach(FakeBoard(clock, app.relay_at_boot()))
    app.tick()
    link, client = make_link(app, history_root=root, backoff_min_ms=backoff_ms[0],
                             backoff_max_ms=backoff_ms[1])
    return app, link, client
