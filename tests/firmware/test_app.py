# micropython-heap: 160k (imports every firmware module: bytecode lives in the unix port's heap)
# The meter application on fake hardware: draining, cutting, recharging, power cuts.
from meter.app import MeterApp
from meter.storage import StateStore
from support import tmpdir
from appfakes import FakeBoard, ManualClock, make_config


def boot(path, cfg, clock, counter=0):
    app = MeterApp(cfg, StateStore(path), clock)
    board = FakeBoard(clock, app.relay_at_boot(), counter)
    app.attach(board)
    return app, board


def run_seconds(app, clock, n):
    for _ in range(n):
        clock.advance(1000)
        app.tick()


def test_balance_drains_by_the_tariff_and_the_relay_opens_at_zero():
    path = tmpdir("app1")
    clock = ManualClock()
    app, board = boot(path, make_config(), clock)
    # First boot with credit: the relay closes once the policy runs.
    run_seconds(app, clock, 1)
    assert board.relay.is_closed()
    board.sensor.power_w = 1000
    # KES 50 at KES 25/kWh is 2 kWh: two hours at 1 kW.
    run_seconds(app, clock, 3600)
    assert app.ledger.balance == 2500
    assert board.relay.is_closed()
    assert app.snapshot["alerts"]["low_balance"] is False
    run_seconds(app, clock, 3600 - 720)
    assert app.snapshot["alerts"]["low_balance"] is True
    run_seconds(app, clock, 720 + 5)
    assert app.ledger.balance <= 0
    assert not board.relay.is_closed()
    assert app.snapshot["alerts"]["critical_balance"] is True


def test_a_recharge_is_persisted_before_it_is_acknowledged_and_reconnects():
    path = tmpdir("app2")
    clock = ManualClock()
    cfg = make_config(initial_balance_cents=0)
    app, board = boot(path, cfg, clock)
    run_seconds(app, clock, 30)
    assert not board.relay.is_closed()
    msg = {"id": "NLJ7RT61SV", "seq": 1, "amount_cents": 10000, "source": "cloud"}
    assert app.apply_recharge(msg) == ("applied", "ok")
    assert board.relay.is_closed()  # at once, not on the next tick
    # A meter booted from the same flash right now already has the credit.
    again = MeterApp(cfg, StateStore(path), ManualClock())
    assert again.ledger.balance == 10000
    assert app.apply_recharge(msg)[0] == "duplicate"
    assert again.apply_recharge(msg)[0] == "duplicate"
    assert app.ledger.balance == 10000


def test_a_malformed_recharge_changes_nothing():
    path = tmpdir("app3")
    clock = ManualClock()
    app, board = boot(path, make_config(), clock)
    for bad in ({"id": "X", "seq": 1, "amount_cents": -5, "source": "cloud"},
                {"id": "X", "seq": 1, "amount_cents": True, "source": "cloud"},
                {"seq": 1, "amount_cents": 100, "source": "cloud"}):
        status, reason = app.apply_recharge(bad)
        assert status == "rejected", (bad, status)
        assert reason != "ok"
    assert app.ledger.balance == 5000


def test_a_power_cut_neither_loses_credit_nor_bills_twice():
    path = tmpdir("app4")
    clock = ManualClock()
    cfg = make_config(initial_balance_cents=100000)
    app, board = boot(path, cfg, clock)
    board.sensor.power_w = 2000
    run_seconds(app, clock, 90)  # persisted at 60 s; 30 s of energy not yet on flash
    counter = board.sensor.counter
    balance_before_cut = app.ledger.balance
    # Power cut: RAM is gone. The PZEM keeps its counter; the board boots from flash.
    clock2 = ManualClock(clock.t + 5)
    app2, board2 = boot(path, cfg, clock2, counter=counter)
    assert board2.initial_level == 0  # active-low relay created closed: no flicker at boot
    run_seconds(app2, clock2, 1)
    # Every Wh the sensor counted is billed exactly once across the cut.
    assert app2.energy.total_wh == counter
    assert app2.ledger.balance == balance_before_cut


def test_relay_open_at_the_cut_stays_open_at_boot():
    path = tmpdir("app5")
    clock = ManualClock()
    cfg = make_config(initial_balance_cents=0)
    app, board = boot(path, cfg, clock)
    run_seconds(app, clock, 2)
    assert not board.relay.is_closed()
    app2, board2 = boot(path, cfg, ManualClock(clock.t + 60))
    assert board2.initial_level == 1  # active-low: 1 = open
    assert not board2.relay.is_closed()


def test_both_state_slots_corrupt_boots_with_no_credit_and_an_alert():
    path = tmpdir("app6")
    clock = ManualClock()
    cfg = make_config(initial_balance_cents=100000)
    app, board = boot(path, cfg, clock)
    run_seconds(app, clock, 2)
    app.persist()
    for p in StateStore(path).slot_paths():
        with open(p, "wb") as f:
            f.write(b"\xff" * 40)
    app2, board2 = boot(path, cfg, ManualClock())
    assert app2.ledger.balance == 0  # not the opening balance: never free credit
    assert not board2.relay.is_closed()
    run_seconds(app2, clock, 1)
    assert app2.snapshot["alerts"]["state_corrupt"] is True


def test_a_silent_sensor_raises_an_alert_without_a_billing_jump():
    path = tmpdir("app7")
    clock = ManualClock()
    app, board = boot(path, make_config(initial_balance_cents=100000), clock)
    board.sensor.power_w = 3600  # 1 Wh per second
    run_seconds(app, clock, 10)
    billed = app.energy.total_wh
    board.sensor.silent = True
    run_seconds(app, clock, 10)
    assert app.snapshot["alerts"]["sensor_fault"] is True
    assert app.snapshot["power_w"] is None
    assert app.energy.total_wh == billed
    board.sensor.silent = False
    run_seconds(app, clock, 1)
    # The gap's energy arrives with the next delta, once, with no jump beyond it.
    assert app.energy.total_wh == billed + 11
    assert app.snapshot["alerts"]["sensor_fault"] is False


def test_consumption_is_persisted_at_the_interval_not_every_tick():
    path = tmpdir("app8")
    clock = ManualClock()
    store = StateStore(path)
    app = MeterApp(make_config(initial_balance_cents=100000), store, clock)
    board = FakeBoard(clock, app.relay_at_boot())
    app.attach(board)
    board.sensor.power_w = 1000
    run_seconds(app, clock, 600)
    # One write for the relay closing, then one a minute: not 600.
    assert store.writes <= 12
    assert store.writes >= 10


def test_a_tariff_update_applies_only_when_newer():
    path = tmpdir("app9")
    clock = ManualClock()
    app, board = boot(path, make_config(), clock)
    assert app.set_tariff({"version": 2, "bands": [{"rate": 3000}], "vat_bp": 1600}) == (True, "ok")
    assert app.set_tariff({"version": 2, "bands": [{"rate": 1}], "vat_bp": 0})[0] is False
    ok, reason = app.set_tariff({"version": 3, "bands": [{"rate": -1}]})
    assert not ok and reason
    clock2 = ManualClock(clock.t)
    again, board2 = boot(path, make_config(), clock2)
    board2.sensor.power_w = 3600
    run_seconds(again, clock2, 2)
    # The newer tariff took over (it is effective at once) and survived the reboot.
    assert again.biller.tariff.version == 2


def test_friendly_hours_keep_the_supply_on_and_the_debt_comes_out_of_the_next_recharge():
    path = tmpdir("app10")
    # 2026-01-01 20:00 EAT (17:00 UTC): inside an 18:00-07:00 friendly window.
    clock = ManualClock(1767225600 + 17 * 3600)
    cfg = make_config(initial_balance_cents=100)
    cfg["policy"]["friendly"] = [18 * 60, 7 * 60]
    app, board = boot(path, cfg, clock)
    board.sensor.power_w = 1000
    run_seconds(app, clock, 600)  # 10 minutes at 1 kW: about KES 4 used, KES 1 in credit
    assert board.relay.is_closed()
    debt = app.ledger.balance
    assert debt < 0
    app.apply_recharge({"id": "R1", "seq": 1, "amount_cents": 1000, "source": "cloud"})
    assert app.ledger.balance == debt + 1000
