# micropython-heap: 160k (imports every firmware module: bytecode lives in the unix port's heap)
# Review of the whole tick path (issue #2): the app on the real PZEM driver speaking Modbus bytes,
# the real clock on an RTC that restarts in 2000, ticks that wrap, a flash that refuses writes.
# Power cuts at every byte of the state write are in test_app_torn.py, the LCD and buzzer in
# test_app_display.py (each its own module for the capped MicroPython heap).
from meter.calendar import epoch
from reviewfakes import _WRAP, RtcClock, WrappingClock, boot, make_config, run
from support import tmpdir

def test_pzem_crc_errors_timeouts_and_exceptions_bill_nothing_twice_and_nothing_lost():
    path = tmpdir("rv_pzem")
    clock = WrappingClock()
    app, board, line = boot(path, make_config(), clock)
    line.power_w = 3600  # one Wh a second
    run(app, clock, 20)
    assert board.relay.is_closed()
    for fault in ("crc", "silent", "exception"):
        billed = app.energy.total_wh
        line.fault = fault
        run(app, clock, 6)
        assert app.energy.total_wh == billed, fault  # no reading: nothing billed, no zero
        assert app.snapshot["power_w"] is None
        assert app.snapshot["alerts"]["sensor_fault"] is True
        line.fault = None
        run(app, clock, 1)
        # The gap's energy arrives once, with the next good reading: every Wh the module
        # counted is billed once (the first reading, relay still open, was the baseline 0).
        assert app.energy.total_wh == line.counter, fault
        assert app.snapshot["alerts"]["sensor_fault"] is False
    assert app.biller.total_wh == app.energy.total_wh
    assert app.ledger.total_debited == app.biller.total_cents
    # A CRC error is retried (3 requests a read); silence is retried on the first read only,
    # then asked once a read until the module answers; an exception reply is never retried.
    assert line.requests == 20 + 6 * 3 + 1 + (3 + 5) + 1 + 6 * 1 + 1


def test_ticks_wrapping_at_2_to_the_30_changes_nothing_in_billing_persisting_or_switching():
    path = tmpdir("rv_wrap")
    clock = WrappingClock(ms=_WRAP - 30500)
    app, board, line = boot(path, make_config(initial_balance_cents=2000), clock)
    line.power_w = 36000  # 10 Wh a second
    run(app, clock, 2)
    assert board.relay.is_closed()
    writes = app.store.writes
    run(app, clock, 100)  # through the wrap, 30 s in
    assert clock.ms < 100000  # the wrap really happened
    assert app._uptime_ms == 102000
    assert app.store.writes - writes == 1  # at 61 s of uptime: not every tick, not never
    assert app.energy.total_wh == line.counter
    # 2000 cents run out a little after the first kWh (band edge) and the relay opens
    run(app, clock, 50)
    assert app.ledger.balance <= 0 and not board.relay.is_closed()
    assert app.energy.total_wh == line.counter
    assert app.ledger.total_debited == app.biller.total_cents


def test_rtc_back_in_2000_after_a_power_cut_keeps_the_month_and_grants_no_friendly_hours():
    path = tmpdir("rv_rtc")
    cfg = make_config(initial_balance_cents=300)
    cfg["policy"]["friendly"] = [18 * 60, 7 * 60]
    clock = RtcClock()
    clock.set(epoch(2026, 1, 20, 18, 0, 0))  # 21:00 in Kenya, by NTP: inside the window
    app, board, line = boot(path, cfg, clock)
    line.power_w = 3600
    run(app, clock, 2)
    assert board.relay.is_closed() and app.biller.month_key == 202601
    app.biller.month_wh = 1500  # well into the second band this month
    app.persist()
    # Power cut. The RTC restarts at 2000-01-01; no network, so no NTP.
    clock2 = RtcClock()
    app2, board2, line2 = boot(path, cfg, clock2)
    assert clock2.now() == epoch(2026, 1, 20, 18, 0, 2)  # carried forward, never back
    assert board2.relay.is_closed()  # it had credit: back on without a flicker
    line2.power_w = 36000  # 10 Wh a second: the rest of the 300 cents is gone in seconds
    run(app2, clock2, 30)
    assert app2.biller.month_key == 202601 and app2.biller.month_wh >= 1500
    # The time of day is only a guess until NTP: no friendly hours on it, the supply is cut.
    assert app2.ledger.balance <= 0
    assert not board2.relay.is_closed() and app2.policy.reason == "no_credit"


def test_a_flash_that_refuses_the_write_refuses_the_credit_and_the_resend_applies_once():
    path = tmpdir("rv_full")
    clock = WrappingClock(ms=0)
    cfg = make_config(initial_balance_cents=0)
    app, board, line = boot(path, cfg, clock)
    run(app, clock, 2)
    msg = {"id": "QKX1", "seq": 1, "amount_cents": 5000, "source": "cloud"}
    app.store.root = path + "/gone"  # every write fails, as on a full or dead flash
    assert app.apply_recharge(msg) == ("rejected", "storage_error")
    assert app.ledger.balance == 0 and not board.relay.is_closed()
    assert app.apply_recharge(msg) == ("rejected", "storage_error")  # re-sent: still nothing
    app.store.root = path
    assert app.apply_recharge(msg) == ("applied", "ok")
    assert app.apply_recharge(msg) == ("duplicate", "already_applied")
    assert app.ledger.balance == 5000 and board.relay.is_closed()
    app2, _, _ = boot(path, cfg, WrappingClock(t=clock.t, ms=0))
    assert app2.ledger.balance == 5000
    assert app2.apply_recharge(msg)[0] == "duplicate"


def test_overload_lockout_survives_a_reboot_and_the_relay_boots_open():
    path = tmpdir("rv_lock")
    clock = WrappingClock(ms=0)
    cfg = make_config()
    cfg["policy"] = {"max_power_w": 3000, "overload_grace_s": 2, "reconnect_delay_s": 30,
                     "max_trips": 2, "trip_window_s": 3600, "min_switch_s": 10}
    app, board, line = boot(path, cfg, clock)
    run(app, clock, 2)
    line.power_w = 4000
    run(app, clock, 5)
    assert not board.relay.is_closed() and app.snapshot["alerts"]["overload"]
    run(app, clock, 31)  # reconnects after the delay, still overloaded: second trip
    run(app, clock, 5)
    assert app.snapshot["alerts"]["lockout"] and not board.relay.is_closed()
    clock2 = WrappingClock(t=clock.t + 600, ms=0)
    app2, board2, line2 = boot(path, cfg, clock2)
    assert not board2.relay.is_closed() and board2.relay_pin.history == []
    line2.power_w = 500
    run(app2, clock2, 120)  # past the reconnect delay and the switching interval
    assert not board2.relay.is_closed() and app2.policy.reason == "lockout"

