# The meter's configuration: /config.json merged over defaults for everything. A missing,
# corrupt or wrongly typed file never stops the meter: it runs on safe defaults and says why.
import json
import os

# Pin map of the reference meter (ESP32 DevKit); a board wired differently says so in its
# /config.json. Safe means: relay pin driven to "open" until the state says otherwise.
DEFAULTS = {
    "meter_id": "",
    "sensor": "pzem",  # "pzem" (PZEM-004T v3 on a UART) or "s0" (pulse output of a DIN meter)
    "pins": {"relay": 26, "relay_reset": -1, "s0": 34, "buzzer": 25, "cover": 35,
             "i2c_scl": 22, "i2c_sda": 21, "keypad_rows": [], "keypad_cols": []},
    "uart": {"id": 2, "tx": 17, "rx": 16, "timeout_ms": 100},
    "pzem": {"address": 0xF8, "retries": 2},
    "s0": {"impulses_per_kwh": 1000, "debounce_ms": 20},
    "relay": {"active_low": True, "latching": False, "pulse_ms": 50},
    "lcd": {"enabled": True, "addr": 0x27},
    "cover": {"enabled": False, "open_level": 1},
    "thresholds": {"low_cents": 10000, "critical_cents": 2000},
    "policy": {"floor_cents": 0, "max_power_w": 0, "overload_grace_s": 2,
               "reconnect_delay_s": 60, "max_trips": 3, "trip_window_s": 3600,
               "min_switch_s": 10, "friendly": None, "friendly_max_debt_cents": 0,
               "tamper_power_w": 5, "tamper_grace_s": 5, "cover_disconnect": False},
    "tariff": None,  # taken whole when given (see DEFAULT_TARIFF)
    "utc_offset_min": 180,  # East Africa Time, no daylight saving
    "tick_ms": 1000,
    "persist_interval_s": 60,  # bounds what a power cut can leave unbilled on the S0 path
    "watchdog_ms": 8000,
    "sensor_fault_after": 5,
    "max_recharge_cents": 25000000,
    "initial_balance_cents": 0,
    "state_dir": "",  # "" = the filesystem root of the device
    "wifi": {"ssid": "", "password": ""},
    # ca: path of the broker's CA certificate (DER) on the device; with tls and no ca the
    # connection is encrypted but the broker is not verified (MicroPython's default).
    "mqtt": {"host": "", "port": 1883, "user": "", "password": "", "tls": False, "ca": ""},
    "key": "",
    # OpenPAYGo Token: the meter's own 32-hex-digit token key and starting code (0: derived
    # from the key, as the standard does), written by provisioning; no key, no keypad tokens
    "token": {"key": "", "starting_code": 0},
}


# A flat placeholder (KES 25/kWh) until the cloud pushes the real, versioned tariff: a tariff
# change never needs new firmware.
DEFAULT_TARIFF = {"version": 0, "bands": [{"rate": 2500}], "vat_bp": 0}


class ConfigError(ValueError):
    pass


_PIN_MAX = 48  # the highest GPIO of the ESP32 family (S3); the classic ESP32 stops at 39
_MAX_CONFIG_BYTES = 8192  # a real config is about 1 KB; a bigger file is not read into RAM
# Integer settings whose type alone does not make them safe: a zero tick busy-loops, a zero
# persist interval wears the flash out, a bad offset makes every tick raise. A value outside
# its range is reported and replaced by the default, like a wrong type.
_RANGES = (
    ("tick_ms", 100, 60000),
    ("persist_interval_s", 5, 3600),
    ("watchdog_ms", 2000, 60000),
    ("sensor_fault_after", 1, 86400),
    ("max_recharge_cents", 1, 1000000000),
    ("initial_balance_cents", 0, 100000000),
    ("utc_offset_min", -720, 840),
    ("uart.id", 0, 2),
    ("uart.tx", 0, _PIN_MAX),
    ("uart.rx", 0, _PIN_MAX),
    ("uart.timeout_ms", 10, 2000),
    ("pzem.address", 1, 0xF8),
    ("pzem.retries", 0, 5),
    ("s0.impulses_per_kwh", 1, 100000),
    ("s0.debounce_ms", 0, 1000),
    ("relay.pulse_ms", 1, 1000),
    ("lcd.addr", 0x08, 0x77),
    ("cover.open_level", 0, 1),
    ("mqtt.port", 1, 65535),
    ("pins.relay", 0, _PIN_MAX),
    ("pins.relay_reset", -1, _PIN_MAX),
    ("pins.s0", -1, _PIN_MAX),
    ("pins.buzzer", -1, _PIN_MAX),
    ("pins.cover", -1, _PIN_MAX),
    ("pins.i2c_scl", -1, _PIN_MAX),
    ("pins.i2c_sda", -1, _PIN_MAX),
    ("token.starting_code", 0, 999999999),
)
_PIN_LISTS = ("keypad_rows", "keypad_cols")


def _check_ranges(config, problems):
    for path, low, high in _RANGES:
        parent = config
        default = DEFAULTS
        parts = path.split(".")
        for part in parts[:-1]:
            parent = parent[part]
            default = default[part]
        key = parts[-1]
        value = parent[key]
        if not low <= value <= high:
            problems.append("%s: %d is outside %d..%d" % (path, value, low, high))
            parent[key] = default[key]
    pins = config["pins"]
    for key in _PIN_LISTS:
        for n in pins[key]:
            if type(n) is not int or not 0 <= n <= _PIN_MAX:
                problems.append("pins.%s: %r is not a pin number" % (key, n))
                pins[key] = []
                break


def _merge(defaults, given, path, problems) -> dict:
    out = {}
    for key in defaults:
        want = defaults[key]
        if key not in given:
            out[key] = _copy(want)
            continue
        value = given[key]
        if isinstance(want, dict) and isinstance(value, dict):
            out[key] = _merge(want, value, path + key + ".", problems) if want else value
        elif want is None or _same_kind(want, value):
            out[key] = value
        else:
            problems.append("%s%s: expected %s, got %r" % (path, key, _kind(want), value))
            out[key] = _copy(want)
    return out


def _kind(value):
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a value"


def _same_kind(want, value):
    if isinstance(want, bool):
        return isinstance(value, bool)
    if isinstance(want, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(want))


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def defaults() -> dict:
    """A fresh copy of the defaults, safe to change."""
    return _copy(DEFAULTS)  # type: ignore


def from_dict(given):
    """Merge a parsed config over the defaults; returns (config, problems)."""
    problems = []
    if not isinstance(given, dict):
        return defaults(), ["config is not a JSON object"]
    for key in given:
        if key not in DEFAULTS:
            problems.append("%s: unknown key, ignored" % key)
    config = _merge(DEFAULTS, given, "", problems)
    _check_ranges(config, problems)
    return config, problems


# Sections only the boot reads: the board is built from these, the app restores its tariff from
# them, and the objects made keep what they need (the relay its pin, the biller its tariff).
# Kept in the config for the meter's life they are about a kilobyte of a 32-bit heap, so the
# boot releases them; WiFi and MQTT go once the link holds their settings (meter.link).
BOOT_ONLY = ("pins", "uart", "pzem", "s0", "relay", "lcd", "cover", "tariff", "token")


def release(config, names):
    """Drop sections nothing reads after they were used: reading one later is a KeyError,
    never a silent default."""
    for name in names:
        if name in config:
            del config[name]


def load(path, log=None):
    """Read a config file; returns (config, problems). Never raises for a bad file."""
    try:
        size = os.stat(path)[6]
    except OSError:
        return defaults(), ["%s: not found, using defaults" % path]
    try:
        if size > _MAX_CONFIG_BYTES:
            raise ValueError("%d bytes is too big" % size)
        with open(path, "rb") as f:
            # Bytes, decoded here: a config with invalid UTF-8 is corrupt, not a crash.
            text = f.read().decode()
        given = json.loads(text)
    except (OSError, ValueError) as exc:
        problems = ["%s: corrupt JSON (%s), using safe defaults" % (path, exc)]
        if log:
            log.error(problems[0])
        return defaults(), problems
    config, problems = from_dict(given)
    if log:
        for p in problems:
            log.warn("config %s", p)
    return config, problems
