# micropython-heap: 160k (imports every firmware module: bytecode lives in the unix port's heap)
# The app keeps going on a state of the wrong shape, a failed tariff save, a sensor silent
# for longer than the ticks period, and a clock carried forward after a power cut.
from meter.app import MeterApp
from meter.storage import StateStore
from appfakes import FakeBoard, ManualClock, make_config
from support import tmpdir


def test_a_crc_valid_state_of_the_wrong_shape_boots_from_the_other_slot():
    path = tmpdir("pend1")
    cfg = make_config(initial_balance_cents=7000)
    app = MeterApp(cfg, StateStore(path), ManualClock())
    app.persist()  # seq 1: a good state with 7000 cents
    StateStore(path).save({"v": 1, "ledger": {"balance_cents": 5}})  # seq 2: no totals
    again = MeterApp(cfg, StateStore(path), ManualClock())  # raises LedgerError today
    assert again.ledger.balance == 7000 and again.boot_status == "fallback"


def test_a_tariff_that_could_not_be_saved_is_not_acknowledged():
    path = tmpdir("pend2")
    clock = ManualClock()
    app = MeterApp(make_config(), StateStore(path), clock)
    app.attach(FakeBoard(clock, app.relay_at_boot()))
    app.store.root = path + "/gone"
    ok, reason = app.set_tariff({"version": 2, "bands": [{"rate": 3000}]})
    assert not ok and reason == "storage_error"  # today: (True, "ok"), lost at the next boot
    assert app.biller.tariff.version == 1


def test_sensor_silent_for_longer_than_the_ticks_period_still_bills_the_gap():
    # ticks_diff wraps after 2**29 ms (6.2 days): elapsed must come from the uptime sum.
    path = tmpdir("pend3")
    clock = ManualClock()

    class Wrap(ManualClock):
        def ticks_ms(self):
            return self.ms % (1 << 30)

        def ticks_diff(self, a, b):
            half = 1 << 29
            return ((a - b + half) % (1 << 30)) - half

    clock = Wrap()
    app = MeterApp(make_config(initial_balance_cents=10 ** 8), StateStore(path), clock)
    board = FakeBoard(clock, app.relay_at_boot())
    app.attach(board)
    board.sensor.power_w = 1000
    clock.advance(1000); app.tick()
    clock.advance(1000); app.tick()
    board.sensor.silent = True
    for _ in range(7 * 24):  # a week without readings, the load on (one tick an hour)
        clock.advance(3600 * 1000); app.tick()
    board.sensor.silent = False
    clock.advance(1000); app.tick()
    assert app.energy.total_wh == board.sensor.counter  # today: the week is a "jump", unbilled


def test_a_carried_clock_bills_the_plain_rate_not_the_night_window():
    from meter.clock import Clock
    from meter.calendar import epoch, local_parts

    class Rtc:
        t = epoch(2000, 1, 1)

        def datetime(self, dt=None):
            if dt is None:
                y, m, d, hh, mm, ss, wd = local_parts(self.t, 0)
                return (y, m, d, wd, hh, mm, ss, 0)
            self.t = epoch(dt[0], dt[1], dt[2], dt[4], dt[5], dt[6])

    class RtcClock(Clock):
        ms = 0

        def ticks_ms(self):
            return self.ms

        def ticks_diff(self, a, b):
            return a - b

        def ticks_add(self, a, b):
            return a + b

    path = tmpdir("pend4")
    cfg = make_config(initial_balance_cents=100000)
    cfg["tariff"] = {"version": 1, "bands": [{"rate": 2000}],
                     "tou": [{"from": "22:00", "to": "06:00", "factor_bp": 5000}]}
    app = MeterApp(cfg, StateStore(path), ManualClock(epoch(2026, 3, 5, 20, 0, 0)))  # 23:00 EAT
    app.persist()
    clock = RtcClock(Rtc(), 10800)  # power back at 09:00; no NTP yet: the clock says 23:00
    app = MeterApp(cfg, StateStore(path), clock)
    board = FakeBoard(clock, app.relay_at_boot())
    app.attach(board)
    board.sensor.power_w = 3600
    for _ in range(101):
        clock.ms += 1000
        app.tick()
    assert app.ledger.balance == 100000 - 200  # 100 Wh at the plain 20 cents/Wh... today: 100
