"""The world: exact energy, relay and power cuts, seeded household profiles with daily peaks."""
import pytest

from simulator.clock import VirtualClock
from simulator.world import DAY_MS, HOUR_MS, Household, SteadyLoad, World

# 2026-01-01 00:00 local (UTC+3) is 2025-12-31 21:00 UTC
MIDNIGHT_LOCAL_MS = 1767225600000 - 3 * HOUR_MS


def local_clock():
    return VirtualClock(epoch_ms=MIDNIGHT_LOCAL_MS)


def test_steady_load_energy_is_exact():
    clock = VirtualClock()
    world = World(clock, SteadyLoad(1000))
    clock.advance(1)
    assert world.metered_mwms() == 1000000  # 1000 W for 1 ms = 1e6 mW*ms
    clock.advance(3600 * 1000 - 1)
    assert world.energy_wh() == 1000 and world.energy_mwh() == 1000000
    # Many small syncs give exactly what one big one does.
    other = World(VirtualClock(), SteadyLoad(1000))
    for _ in range(3600):
        other.clock.advance(1000)
        other.sync()
    assert other.metered_mwms() == world.metered_mwms()


def test_relay_open_draws_nothing_and_bypass_draws_anyway():
    clock = VirtualClock()
    world = World(clock, SteadyLoad(500))
    clock.advance(60000)
    world.set_relay(False)
    clock.advance(60000)
    assert world.metered_power_mw() == 0
    assert world.energy_mwh() == 500 * 1000 // 60  # one minute at 500 W = 8.333 Wh
    world.set_bypass(True)
    clock.advance(60000)
    assert world.metered_power_mw() == 500000
    assert world.metered_mwms() == 2 * 500000 * 60000


def test_power_cut_stops_energy_and_the_mains():
    clock = VirtualClock()
    world = World(clock, SteadyLoad(1000))
    world.schedule_outage(10000, 5000)
    clock.advance(20000)
    assert world.metered_mwms() == 1000000 * 15000
    assert world.unpowered_ms == 5000
    assert world.mains_on(12000) is False and world.mains_on(15000) is True
    world.cut_power()
    on, dv, ma, dw, mwh, dhz, pf = world.sensor_reading()
    assert (on, dv, ma, dw, dhz) == (False, 0, 0, 0, 0) and mwh == 15000 * 1000 // 3600
    clock.advance(7000)
    world.restore_power()
    clock.advance(1000)
    assert world.metered_mwms() == 1000000 * 16000
    assert world.next_event_ms() is None


def test_household_is_seeded_and_random_access():
    a, b, c = Household(seed=7), Household(seed=7), Household(seed=8)
    assert a.day(3) == b.day(3)
    assert a.day(3) != c.day(3)
    assert a.day(3) != a.day(4)
    first = Household(seed=7).day(10)
    assert Household(seed=7).day(10) == first  # asking other days first changes nothing
    powers = [p for _, p in first]
    assert min(powers) > 0 and max(powers) >= 1000000  # the kettle or the iron


def average_w(profile, day, start_h, end_h):
    total = 0
    for minute in range(start_h * 60, end_h * 60):
        total += profile.power_mw(day * DAY_MS + minute * 60000)
    return total / ((end_h - start_h) * 60) / 1000


def test_household_has_morning_and_evening_peaks():
    for seed in range(1, 6):
        house = Household(seed=seed)
        night = average_w(house, 2, 1, 4)
        morning = average_w(house, 2, 6, 8)
        midday = average_w(house, 2, 11, 15)
        evening = average_w(house, 2, 18, 22)
        assert morning > 2 * night and evening > 2 * night
        assert evening > midday and morning > midday


def test_profile_next_change_and_integration_match_brute_force():
    clock = local_clock()
    house = Household(seed=11)
    world = World(clock, house)
    clock.advance(DAY_MS)
    exact = world.metered_mwms()
    brute = 0
    for second in range(86400):  # changes fall on whole ms, so sum per ms inside each second
        t = 1767225600000 + second * 1000  # local midnight, as the world sees it
        p = house.power_mw(t)
        nxt = house.next_change(t)
        if nxt is not None and nxt < t + 1000:
            brute += p * (nxt - t) + house.power_mw(nxt) * (t + 1000 - nxt)
        else:
            brute += p * 1000
    # a second holding two changes is the only way the brute force could differ
    assert abs(exact - brute) <= 2 * 2000000 * 1000
    assert 2000 < exact // 3600000000 < 20000  # a household uses a few kWh a day


def test_world_uses_local_time_for_the_daily_curve():
    clock = local_clock()
    world = World(clock, Household(seed=2))
    clock.advance(19 * HOUR_MS)
    evening = world.demand_mw()
    clock.advance(8 * HOUR_MS)  # 03:00 next day
    assert world.demand_mw() < evening


def test_voltage_frequency_seeded_within_range():
    clock = VirtualClock()
    w1, w2 = World(clock, SteadyLoad(100), seed=1), World(clock, SteadyLoad(100), seed=1)
    values = []
    for _ in range(50):
        clock.advance(600000)
        assert w1.voltage_dv() == w2.voltage_dv()
        values.append(w1.voltage_dv())
        assert 495 <= w1.frequency_dhz() <= 505
    assert min(values) >= 2320 and max(values) <= 2460 and len(set(values)) > 5


def test_extra_load_switches_at_its_instant():
    clock = VirtualClock()
    world = World(clock, SteadyLoad(0))
    clock.advance(1000)
    world.set_extra_load(2000)
    clock.advance(1000)
    assert world.metered_mwms() == 2000000 * 1000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_energy_is_independent_of_sync_pattern(seed):
    def run(step_ms):
        clock = local_clock()
        world = World(clock, Household(seed=seed))
        while clock.now_ms() < 2 * DAY_MS:
            clock.advance(min(step_ms, 2 * DAY_MS - clock.now_ms()))
            world.sync()
        return world.metered_mwms()

    assert run(DAY_MS) == run(HOUR_MS) == run(997 * 60) == run(HOUR_MS // 7 + 1)
