from meter import config
from support import tmpdir


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_missing_file_gives_defaults():
    cfg, problems = config.load("/nonexistent/config.json")
    assert cfg["sensor"] == "pzem"
    assert cfg["pins"]["relay"] == 26
    assert problems and "not found" in problems[0]


def test_values_merge_over_defaults_per_key():
    d = tmpdir("config1")
    _write(d + "/config.json", '{"meter_id": "MTR001", "pins": {"relay": 4}, "relay": {"active_low": false}}')
    cfg, problems = config.load(d + "/config.json")
    assert problems == []
    assert cfg["meter_id"] == "MTR001"
    assert cfg["pins"]["relay"] == 4
    assert cfg["pins"]["s0"] == 34  # untouched default beside the override
    assert cfg["relay"]["active_low"] is False
    assert cfg["relay"]["latching"] is False


def test_corrupt_json_gives_safe_defaults_and_a_clear_problem():
    d = tmpdir("config2")
    _write(d + "/config.json", '{"meter_id": "MTR001", "pins": {')
    lines = []

    class Log:
        def error(self, msg, *a):
            lines.append(msg % a if a else msg)

        def warn(self, msg, *a):
            lines.append(msg % a if a else msg)

    cfg, problems = config.load(d + "/config.json", Log())
    assert cfg == config.DEFAULTS
    assert "corrupt JSON" in problems[0]
    assert lines and "corrupt JSON" in lines[0]


def test_wrong_types_fall_back_to_the_default_for_that_key_only():
    cfg, problems = config.from_dict({"tick_ms": "fast", "watchdog_ms": True,
                                      "pins": {"relay": 5}, "thresholds": 7})
    assert cfg["tick_ms"] == 1000
    assert cfg["watchdog_ms"] == 8000
    assert cfg["pins"]["relay"] == 5
    assert cfg["thresholds"]["low_cents"] == 10000
    assert len(problems) == 3


def test_unknown_keys_are_reported_not_fatal():
    cfg, problems = config.from_dict({"colour": "blue"})
    assert "colour" not in cfg
    assert problems == ["colour: unknown key, ignored"]


def test_defaults_are_not_shared_between_loads():
    a, _ = config.from_dict({})
    a["pins"]["relay"] = 99
    b, _ = config.from_dict({})
    assert b["pins"]["relay"] == 26


def test_a_json_array_is_not_a_config():
    cfg, problems = config.from_dict([1, 2])
    assert cfg == config.DEFAULTS
    assert problems == ["config is not a JSON object"]


def test_out_of_range_integers_fall_back_to_their_defaults():
    # Each of these has the right type, and each would stop or harm a meter: a busy loop, a
    # flash written every second, a Recharger refusing to be built, a PZEM address the driver
    # refuses, a UTC offset that makes every tick raise.
    cfg, problems = config.from_dict({
        "tick_ms": 0, "persist_interval_s": 0, "max_recharge_cents": 0, "watchdog_ms": 5,
        "utc_offset_min": 100000, "pzem": {"address": 0x1FF, "retries": 2},
        "s0": {"impulses_per_kwh": 0}, "pins": {"relay": 99, "buzzer": -1},
        "lcd": {"addr": 0x3F}})
    assert cfg["tick_ms"] == 1000 and cfg["persist_interval_s"] == 60
    assert cfg["max_recharge_cents"] == 25000000 and cfg["watchdog_ms"] == 8000
    assert cfg["utc_offset_min"] == 180
    assert cfg["pzem"]["address"] == 0xF8 and cfg["pzem"]["retries"] == 2
    assert cfg["s0"]["impulses_per_kwh"] == 1000
    assert cfg["pins"]["relay"] == 26 and cfg["pins"]["buzzer"] == -1  # -1: no buzzer
    assert cfg["lcd"]["addr"] == 0x3F
    assert len(problems) == 8, problems
    assert "tick_ms: 0 is outside 100..60000" in problems


def test_the_values_in_range_at_the_edges_are_kept():
    cfg, problems = config.from_dict({"tick_ms": 100, "persist_interval_s": 3600,
                                      "utc_offset_min": -720, "pzem": {"address": 1}})
    assert problems == []
    assert cfg["tick_ms"] == 100 and cfg["persist_interval_s"] == 3600
    assert cfg["utc_offset_min"] == -720 and cfg["pzem"]["address"] == 1


def test_keypad_pins_must_be_pin_numbers():
    cfg, problems = config.from_dict({"pins": {"keypad_rows": [13, "x", 14],
                                               "keypad_cols": [1, 2, 3, 4]}})
    assert cfg["pins"]["keypad_rows"] == [] and cfg["pins"]["keypad_cols"] == [1, 2, 3, 4]
    assert len(problems) == 1 and "keypad_rows" in problems[0]


def test_garbage_bytes_and_a_huge_file_are_corrupt_not_a_crash():
    d = tmpdir("config3")
    with open(d + "/config.json", "wb") as f:
        f.write(b'{"meter_id": "\xff\xfe"}')
    cfg, problems = config.load(d + "/config.json")
    assert cfg == config.DEFAULTS and "corrupt" in problems[0]
    with open(d + "/config.json", "wb") as f:
        f.write(b'{"meter_id": "')
        for _ in range(20):  # in pieces: the MicroPython run has a 64 KB heap
            f.write(b"x" * 1000)
        f.write(b'"}')
    cfg, problems = config.load(d + "/config.json")
    assert cfg == config.DEFAULTS and "too big" in problems[0]


def test_release_drops_sections_so_a_later_read_fails_loudly():
    cfg = config.defaults()
    config.release(cfg, ("mqtt", "wifi", "nothing"))
    assert "mqtt" not in cfg and "wifi" not in cfg and cfg["tick_ms"] == 1000
    try:
        cfg["mqtt"]
    except KeyError:
        pass
    else:
        raise AssertionError("a released section read back")
