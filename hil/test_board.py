"""The HIL suite: the same checks against a real board (--port) or the simulated one.

Every wait is bounded (the driver's timeouts); nothing here measures wall-clock time.
"""
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PWRON_RESET, HARD_RESET, WDT_RESET, SOFT_RESET = 1, 2, 3, 5
TARIFF_CENTS_PER_KWH = 2500  # the firmware's placeholder tariff; the rig config sets none


def repo_firmware_version():
    with open(os.path.join(ROOT, "firmware", "meter", "__init__.py")) as f:
        return re.search(r'VERSION = "([^"]+)"', f.read()).group(1)


def test_board_boots_and_reports_its_firmware_version(meter):
    booted = meter.hard_reset()
    assert b"rst:" in booted
    log = meter.boot()
    assert "meter HIL-0001 up" in log
    assert meter.version() == repo_firmware_version()


def test_balance_survives_a_soft_reset(meter):
    meter.boot()
    assert meter.recharge("HIL-SOFT-1", 1, 12345) == ("applied", "ok")
    meter.soft_reset()
    meter.boot()
    assert meter.balance() == 12345


def test_balance_survives_a_hard_reset(meter):
    meter.boot()
    assert meter.recharge("HIL-HARD-1", 1, 23456) == ("applied", "ok")
    meter.hard_reset()
    assert meter.reset_cause() in meter.hard_reset_causes()
    meter.boot()
    assert meter.balance() == 23456


def test_balance_survives_machine_reset(meter):
    meter.boot()
    assert meter.recharge("HIL-MR-1", 1, 3456) == ("applied", "ok")
    meter.board.machine_reset()
    assert meter.reset_cause() == SOFT_RESET  # what the ESP32 reports after machine.reset()
    meter.boot()
    assert meter.balance() == 3456


def test_recharge_is_applied_once_and_a_repeat_is_a_duplicate(meter):
    meter.boot()
    assert meter.recharge("HIL-R-1", 1, 5000) == ("applied", "ok")
    assert meter.recharge("HIL-R-1", 1, 5000) == ("duplicate", "already_applied")
    assert meter.balance() == 5000
    # The id survives a reset with the credit: a re-delivery after a reboot changes nothing.
    meter.soft_reset()
    meter.boot()
    assert meter.recharge("HIL-R-1", 1, 5000) == ("duplicate", "already_applied")
    assert meter.recharge("HIL-R-2", 2, 100) == ("applied", "ok")
    assert meter.balance() == 5100


def test_recharge_out_of_order_and_garbage(meter):
    meter.boot()
    assert meter.recharge("HIL-O-2", 2, 200) == ("applied", "ok")
    assert meter.recharge("HIL-O-1", 1, 100) == ("applied", "ok")
    assert meter.recharge("HIL-O-2", 2, 200)[0] == "duplicate"
    status, _ = meter.recharge("HIL-O-3", 3, -5)
    assert status == "rejected"
    assert meter.balance() == 300


def test_relay_pin_follows_the_balance(meter, rig_control):
    meter.boot()
    assert not meter.relay_pin_closed()  # no credit, no power
    assert meter.recharge("HIL-RELAY-1", 1, 10) == ("applied", "ok")
    assert meter.relay_pin_closed()
    assert meter.snapshot()["relay_closed"] is True
    if rig_control is None:
        pytest.skip("this rig cannot draw a load through the meter")
    # 9 kW bills 2.5 cents every 0.4 s: ten cents run out within a few seconds of ticks.
    rig_control.set_load(9000)
    for _ in range(60):
        meter.tick(1, gap_ms=100)
        if not meter.relay_pin_closed():
            break
    assert not meter.relay_pin_closed()
    snap = meter.snapshot()
    assert snap["relay_closed"] is False and snap["balance_cents"] <= 0
    # Paying again reconnects at once, by the pin.
    assert meter.recharge("HIL-RELAY-2", 2, 5000) == ("applied", "ok")
    assert meter.relay_pin_closed()


@pytest.mark.parametrize("fault", ["timeout", "garbage", "crc"])
def test_sensor_fault_raises_an_alert_without_a_billing_jump(meter, rig_control, fault):
    if rig_control is None:
        pytest.skip("this rig has no PZEM emulator to break")
    meter.boot()
    assert meter.recharge("HIL-FAULT-1", 1, 100000) == ("applied", "ok")
    rig_control.set_load(2000)
    meter.tick(3, gap_ms=20)
    before = meter.balance()
    energy_before = rig_control.energy_mwh()
    rig_control.sensor_fault(fault)
    meter.tick(meter.config["sensor_fault_after"] + 1, gap_ms=20)
    snap = meter.snapshot()
    assert snap["alerts"]["sensor_fault"] is True
    assert snap["balance_cents"] == before  # nothing billed on no reading
    rig_control.sensor_fault(None)
    meter.tick(2, gap_ms=20)
    snap = meter.snapshot()
    assert snap["alerts"]["sensor_fault"] is False
    # After the gap the meter bills what really flowed (whole Wh, a Wh of rounding), no more.
    true_wh = (rig_control.energy_mwh() - energy_before) // 1000 + 2
    assert 0 <= before - snap["balance_cents"] <= true_wh * TARIFF_CENTS_PER_KWH // 1000 + 1


def test_a_hung_loop_is_reset_by_the_watchdog_with_state_intact(meter):
    board = meter.board
    meter.boot()
    assert meter.recharge("HIL-WDT-1", 1, 7777) == ("applied", "ok")
    timeout_ms = meter.config["watchdog_ms"]
    # A loop that feeds outlives the timeout: the watchdog resets for silence, not slowness.
    board.exec("import time\nwdt = app.board.watchdog(%d)\nfor _ in range(%d):\n"
               "    wdt.feed()\n    time.sleep_ms(100)" % (timeout_ms, timeout_ms // 100 + 5),
               timeout=timeout_ms / 1000 + 10)
    assert meter.balance() == 7777  # `app` still defined: the board was not reset
    board.start("while True:\n    pass")
    booted = board.wait_for_boot(timeout=timeout_ms / 1000 + 10)
    assert b"rst:" in booted
    assert meter.reset_cause() == WDT_RESET
    meter.boot()
    assert meter.balance() == 7777
    assert meter.recharge("HIL-WDT-1", 1, 7777)[0] == "duplicate"


@pytest.mark.parametrize("content", [b"{\"meter_id\": \"HIL-0001\", ",
                                     b"\xff\xfe\x00garbage",
                                     b"", b"[1, 2, 3]", b"null"],
                         ids=["truncated", "binary", "empty", "list", "null"])
def test_corrupt_config_gives_a_clear_error_and_safe_defaults(meter, content):
    meter.write_config(content)
    try:
        log = meter.boot()
        assert "config.json" in log or "not a JSON object" in log, log
        assert "ERROR" in log or "WARN" in log, log
        cfg = meter.board.eval("app.config")
        defaults = meter.board.eval("__import__('meter.config').config.defaults()")
        cfg.pop("meter_id")
        defaults.pop("meter_id")
        # what only the boot reads (pins, tariff...) is released once used (meter.config)
        for name in meter.board.eval("__import__('meter.config').config.BOOT_ONLY"):
            defaults.pop(name)
        assert cfg == defaults
        assert meter.board.eval("app.snapshot['meter_id']").startswith("MITA")
        if meter.balance() <= 0:
            assert not meter.relay_pin_closed()
    finally:
        meter.board.remove("/state.a")  # defaults keep state at the root: leave none behind
        meter.board.remove("/state.b")
        meter.write_config(json.dumps(meter.config).encode())
