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
