# The meter's configuration: /config.json merged over defaults for everything. A missing,
# corrupt or wrongly typed file never stops the meter: it runs on safe defaults and says why.
import json

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
    "mqtt": {"host": "", "port": 1883, "user": "", "password": "", "tls": False},
    "key": "",
}


# A flat placeholder (KES 25/kWh) until the cloud pushes the real, versioned tariff: a tariff
# change never needs new firmware.
DEFAULT_TARIFF = {"version": 0, "bands": [{"rate": 2500}], "vat_bp": 0}


class ConfigError(ValueError):
    pass


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
    return _merge(DEFAULTS, given, "", problems), problems


def load(path, log=None):
    """Read a config file; returns (config, problems). Never raises for a bad file."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return defaults(), ["%s: not found, using defaults" % path]
    try:
        given = json.loads(text)
    except ValueError as exc:
        problems = ["%s: corrupt JSON (%s), using safe defaults" % (path, exc)]
        if log:
            log.error(problems[0])
        return defaults(), problems
    config, problems = from_dict(given)
    if log:
        for p in problems:
            log.warn("config %s", p)
    return config, problems
