# meter.json_buffer: a message's JSON written into one buffer allocated once, byte for byte what
# json.dumps makes, and a message longer than the buffer measured but not kept.
import json

from meter.json_buffer import SIZE, JsonBuffer

TELEMETRY = {"v": 1, "t": 1764120000, "balance_cents": 45075, "power_w": 230,
             "energy_wh": 123456, "voltage_dv": 2301, "month_wh": 4567, "load_connected": True,
             "tariff_version": 3, "alerts": {"low_balance": False, "critical_balance": False,
                                             "sensor_fault": False, "tamper": False,
                                             "overload_lockout": False, "state_corrupt": False},
             "counters": {"malformed": 0, "refused": 0, "oversized": 0, "dropped": 0,
                          "history_dropped": 0, "json_overflows": 0}}


def test_a_message_is_the_bytes_json_dumps_makes():
    buf = JsonBuffer()
    view = buf.dump(TELEMETRY)
    assert bytes(view) == json.dumps(TELEMETRY).encode()
    assert buf.size == len(view) < SIZE


def test_the_next_message_reuses_the_buffer_from_its_start():
    buf = JsonBuffer(64)
    assert bytes(buf.dump({"a": "x" * 20})) == b'{"a": "' + b"x" * 20 + b'"}'
    assert bytes(buf.dump([1, 2])) == b"[1, 2]"
    assert buf.size == 6


def test_a_message_longer_than_the_buffer_is_measured_not_kept():
    buf = JsonBuffer(16)
    msg = {"text": "y" * 40}
    assert buf.dump(msg) is None
    assert buf.size == len(json.dumps(msg))
    assert bytes(buf.dump({"ok": 1})) == b'{"ok": 1}'  # and the buffer is still good after


def test_non_ascii_text_is_counted_in_bytes():
    buf = JsonBuffer(32)
    view = buf.dump({"n": "\u00e9"})
    assert bytes(view) == json.dumps({"n": "\u00e9"}).encode()
    long = {"n": "\u00e9" * 20}
    assert buf.dump(long) is None and buf.size == len(json.dumps(long).encode())
