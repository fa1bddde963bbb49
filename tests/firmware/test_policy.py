# Relay policy rules, driven second by second the way the app drives it. Kept compact on
# purpose: the MicroPython run compiles this file from source inside a 64 KB heap.
from meter.policy import RelayPolicy, PolicyError, parse_window
from meter.log import Logger
from support import raises
import json


class Meter:
    # The app's loop in miniature: feed the inputs once a second, switch the relay as told.

    def __init__(self, policy, balance=10000, closed=True, minute=720, t=0):
        self.p = policy
        self.balance = balance
        self.closed = closed
        self.minute = minute
        self.t = t
        self.power = 100
        self.cover = False
        self.switches = []  # (t, closed) at every change of the relay

    def run(self, seconds=1, **inputs):
        for name in inputs:
            setattr(self, name, inputs[name])
        for _ in range(seconds):
            out = self.p.update(self.t, self.minute, self.balance, self.power, self.cover,
                                self.closed)
            if out != self.closed:
                self.switches.append((self.t, out))
            self.closed = out
            self.t += 1
        return self.closed


def alert(m, name):
    return m.p.alerts()[name]


def trip(m, gap):
    m.run(1, power=9000)
    m.run(gap, power=100)


def test_credit_opens_at_the_floor_and_closes_above_it():
    m = Meter(RelayPolicy(floor_cents=500, min_switch_s=0))
    assert [m.run(1, balance=b) for b in (501, 500, -20, 501)] == [True, False, False, True]
    assert m.p.reason == "credit"
    m.run(1, balance=500)
    assert m.p.reason == "no_credit"


def test_min_switch_s_delays_credit_switching_but_not_a_trip():
    m = Meter(RelayPolicy(min_switch_s=10, max_power_w=1000, overload_grace_s=0), 0, False)
    m.run(1)
    m.run(1, balance=100)         # closes at t=1: a first switch is never delayed
    m.run(12, balance=0)          # opens at t=11
    assert m.run(1, balance=100) is False and m.p.reason == "min_interval"  # 3 s later
    m.run(7)
    assert m.p.reason == "credit"
    m.run(1, power=3000)          # 1 s after the close: a trip does not wait
    assert m.switches == [(1, True), (11, False), (21, True), (22, False)]


def test_overload_trips_only_after_more_than_the_grace():
    m = Meter(RelayPolicy(max_power_w=2000, overload_grace_s=2))
    # single spikes, runs broken by a normal or a missing reading, exactly at the limit
    for w in (5000, 5000, 1500, 5000, 5000, None, 5000, 2000, 2000, 2000, 2000):
        m.run(1, power=w)
    assert m.closed and m.p.trips == 0 and not alert(m, "overload")
    m.run(2, power=2001)
    assert m.closed
    assert m.run() is False and m.p.reason == "overload" and alert(m, "overload")


def test_trip_then_reconnect_after_the_delay_but_only_with_credit():
    m = Meter(RelayPolicy(max_power_w=2000, reconnect_delay_s=60))
    m.run(3, power=3000)          # trips at t=2
    m.run(60, power=0)
    assert m.switches == [(2, False), (62, True)] and m.p.trips == 1
    assert m.p.reason == "credit" and not alert(m, "overload")
    m.run(3, power=3000)          # trips again at t=65; no credit by the end of the hold
    m.run(100, power=0, balance=0)
    assert m.closed is False and m.p.reason == "no_credit"


def test_three_trips_in_the_window_lock_out_until_reset():
    lines = []
    p = RelayPolicy(max_power_w=2000, overload_grace_s=0, log=Logger("m", sink=lines.append))
    m = Meter(p)
    trip(m, 70)
    trip(m, 70)                   # each reconnected after 60 s
    assert m.closed and p.trips == 2 and not alert(m, "lockout")
    trip(m, 4000)                 # past the window: still locked out
    assert m.closed is False and p.reason == "lockout" and alert(m, "lockout")
    p.reset_lockout()
    assert m.run() is True and p.trips == 0 and not alert(m, "lockout")
    assert lines[0] == "WARN m: overload 9000 W: tripped, reconnect in 60 s"
    assert "ERROR m: overload 9000 W: trip 3 in 3600 s, locked out" in lines


def test_trips_spread_beyond_the_window_do_not_lock_out():
    p = RelayPolicy(max_power_w=2000, overload_grace_s=0)
    m = Meter(p)
    counted = []
    for _ in range(5):            # a trip every 1801 s
        m.run(1, power=9000)
        counted.append(p.trips)
        m.run(1800, power=100)
    assert m.closed and not alert(m, "lockout") and counted == [1, 2, 2, 2, 2]
    for last, locked in ((3599, True), (3600, False)):
        m = Meter(RelayPolicy(max_power_w=2000, overload_grace_s=0))
        trip(m, 1799)
        trip(m, last - 1801)
        m.run(1, power=9000)      # third trip at t=last, first at t=0
        assert alert(m, "lockout") is locked


def test_missing_readings_never_trip_nor_raise_tamper():
    m = Meter(RelayPolicy(max_power_w=2000, tamper_grace_s=2))
    for _ in range(20):
        m.run(2, power=5000)
        m.run(1, power=None)
    assert m.closed and m.p.trips == 0
    m.run(200, power=None, balance=0)
    assert m.closed is False and not alert(m, "tamper_bypass")
    m = Meter(RelayPolicy(max_power_w=0, overload_grace_s=0))
    m.run(100, power=50000)       # max_power_w = 0: no overload protection
    assert m.closed


def test_bypass_alert_needs_power_with_the_relay_open_beyond_the_grace():
    m = Meter(RelayPolicy(max_power_w=2000, overload_grace_s=0), balance=0, closed=False)
    m.run(50, power=4)            # below tamper_power_w: noise
    m.run(5, power=5)
    assert not alert(m, "tamper_bypass")
    m.run(1, power=5000)          # 6th second; with the relay open it is no overload
    assert alert(m, "tamper_bypass") and m.p.trips == 0
    m.run(1, power=None)          # a silent sensor keeps a raised alert
    assert alert(m, "tamper_bypass")
    m.run(1, power=0)
    assert not alert(m, "tamper_bypass")
    m.run(50, power=1500, balance=100)
    assert m.closed and not alert(m, "tamper_bypass")


def test_cover_alerts_and_disconnects_only_when_configured():
    m = Meter(RelayPolicy())
    assert m.run(1, cover=True) and alert(m, "tamper_cover")
    m.run(1, cover=False)
    assert not alert(m, "tamper_cover")
    m = Meter(RelayPolicy(cover_disconnect=True), balance=0, closed=False)
    m.run(1)
    m.run(1, balance=100)         # closes at t=1
    assert m.run(1, cover=True) is False and m.p.reason == "cover"
    m.run(2)
    m.run(10, cover=False)        # shut at t=5; the close still waits for min_switch_s
    assert m.switches == [(1, True), (2, False), (12, True)]


def test_friendly_window_wrapping_midnight_with_a_debt_limit():
    p = RelayPolicy(friendly=(1080, 420), friendly_max_debt_cents=5000, min_switch_s=0,
                    max_power_w=2000, overload_grace_s=0)
    m = Meter(p, balance=100, minute=1079)
    m.run()
    assert m.run(1, minute=1380, balance=-100) and p.reason == "friendly_hours"
    assert m.run(1, minute=120, balance=-4999)
    assert m.run(1, balance=-5000) is False and p.reason == "no_credit"
    assert m.run(1, balance=-4000) is False   # paying part of the debt is not credit
    assert m.run(1, balance=1) and p.reason == "credit"
    m.run(1, balance=-300)
    trip(m, 70)                   # a trip does not end the friendly supply
    assert m.switches == [(3, False), (5, True), (7, False), (67, True)]
    assert p.reason == "friendly_hours"


def test_friendly_window_ends_and_gives_no_new_credit():
    m = Meter(RelayPolicy(friendly=(1080, 420), min_switch_s=0), balance=-250000, minute=419)
    assert m.run() is True        # no debt limit
    assert [m.run(1, minute=x) for x in (420, 1079, 1080)] == [False, False, False]
    p = RelayPolicy(friendly=(1380, 60))
    assert [p.boot_state(True, 0, x) for x in (1379, 1380, 0, 59, 60, 720, None)] == \
        [False, True, True, True, False, False, False]
    m = Meter(RelayPolicy(friendly=(0, 1439)), balance=0, minute=None)
    assert m.run() is False       # clock not set: no friendly hours


def test_state_round_trip_mid_lockout_survives_a_reboot():
    p = RelayPolicy(max_power_w=2000, overload_grace_s=0, max_trips=2, reconnect_delay_s=5)
    m = Meter(p, t=1000)
    trip(m, 20)
    trip(m, 20)
    p = RelayPolicy(state=json.loads(json.dumps(p.state())))
    assert p.boot_state(True, 10000) is False and p.reason == "lockout"
    m = Meter(p, closed=False)    # uptime restarts at 0
    m.run(5000)
    assert m.closed is False and alert(m, "lockout") and p.state()["lockout"]
    p.reset_lockout()
    assert m.run() is True


def test_state_round_trip_keeps_the_remaining_waits_and_the_trips():
    p = RelayPolicy(max_power_w=2000, overload_grace_s=0, min_switch_s=100)
    m = Meter(p, t=500)
    trip(m, 150)                  # trip at 500, back at 600 (min_switch_s outlasts the hold)
    trip(m, 20)                   # trip at 651
    saved = json.loads(json.dumps(p.state()))
    assert saved == {"v": 1, "lockout": False, "trip_ages_s": [171, 20], "hold_s": 40,
                     "switch_wait_s": 80}
    p = RelayPolicy(max_power_w=2000, overload_grace_s=0, state=saved)
    assert p.trips == 2 and p.state() == saved and p.boot_state(False, 10000) is False
    m = Meter(p, closed=False, t=7)           # first update at uptime 7
    m.run(41)
    assert p.reason == "min_interval" and not alert(m, "overload")
    m.run(100)
    assert m.switches == [(87, True)]
    m.run(1, power=9000)          # third trip inside the window
    assert alert(m, "lockout")


def test_unreadable_state_is_logged_and_ignored():
    lines = []
    for bad in ("lockout", {"v": 2, "lockout": True}, {"v": 1, "lockout": 1},
                {"v": 1, "trip_ages_s": [-1]}, {"v": 1, "trip_ages_s": 3},
                {"v": 1, "hold_s": "40"}):
        p = RelayPolicy(state=bad, log=Logger("m", sink=lines.append))
        assert p.alerts() == RelayPolicy().alerts() and p.state() == RelayPolicy().state()
    assert len(lines) == 6 and lines[0].startswith("ERROR m: relay policy state ignored")
    assert RelayPolicy(state={"v": 1, "lockout": True, "newer": 0}).reason == "lockout"


def test_boot_state_restores_but_never_closes_without_credit():
    p = RelayPolicy(friendly=(1080, 420), friendly_max_debt_cents=1000)
    cases = ((1, 500, None, 1), (0, 500, None, 0), (1, 0, None, 0), (1, -200, 1200, 1),
             (1, -1000, 1200, 0), (1, -200, 720, 0), (1, -200, None, 0), (0, -200, 1200, 0))
    assert [p.boot_state(c, b, x) for c, b, x, _ in cases] == [c[3] == 1 for c in cases]
    raises(PolicyError, p.boot_state, True, True)


def test_from_config_replaces_bad_values_by_defaults_and_logs_them():
    lines = []
    p = RelayPolicy.from_config({"max_power_w": 2300, "friendly": [1080, 420], "max_trips": 0,
                                 "floor_cents": True, "min_switch_s": "5", "tariff": "x"},
                                log=Logger("m", sink=lines.append))
    assert (p.max_power_w, p.friendly, p.max_trips, p.floor_cents, p.min_switch_s) == \
        (2300, (1080, 420), 3, 0, 10)
    assert len(lines) == 3 and lines[1] == "ERROR m: policy config ignored: max_trips: bad value 0"
    raises(PolicyError, RelayPolicy, max_power_w=-1)
    for w in ((60, 60), (0, 1440), (True, 60), [1, 2, 3], "18:00-07:00"):
        raises(PolicyError, parse_window, w)
    assert parse_window([425, 360]) == (425, 360)


def test_bad_update_arguments_are_refused():
    p = RelayPolicy()
    for a in ((0, 600, True, 9), (0, 600, 9, 1.5), (0, 600, 9, False), ("0", 600, 9, 9),
              (0, -1, 9, 9)):
        raises(PolicyError, p.update, a[0], a[1], a[2], a[3], False, True)


def test_repeated_or_backward_seconds_do_not_stretch_runs_or_cancel_waits():
    p = RelayPolicy(max_power_w=2000)
    for _ in range(10):           # the same second delivered ten times is one second
        assert p.update(5, 600, 100, 3000, False, True) is True
    p = RelayPolicy(min_switch_s=10)
    assert p.update(100, 600, 0, 0, False, True) is False
    assert p.update(50, 600, 100, 0, False, False) is False   # clock stepped back
    assert p.update(109, 600, 100, 0, False, False) is False
    assert p.update(110, 600, 100, 0, False, False) is True
