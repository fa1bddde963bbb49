"""WiFi manager and NTP sync on the simulator's network/ntptime/machine modules (the ESP32 API
backed by a scripted access point and a virtual clock): outages, reconnects, the RTC set."""
import pytest

import simulator


@pytest.fixture
def clock():
    from simulator.clock import VirtualClock
    return simulator.install(VirtualClock())


@pytest.fixture
def board(tmp_path, clock):
    from simulator import board_context
    from simulator.sim_board import SimBoard
    from simulator.world import SteadyLoad, World
    world = World(clock, SteadyLoad(1000), seed=1)
    made = SimBoard(world, str(tmp_path / "m1"), clock, meter_id="m1", seed=1)
    token = board_context.activate(made)
    yield made
    board_context.deactivate(token)


def steps(wifi, clock, ms):
    """Run the manager for ms of virtual time, as its run() loop would."""
    end = clock.now_ms() + ms
    while clock.now_ms() < end:
        clock.advance(wifi.step())


def test_wifi_manager_rides_a_scripted_outage(board, clock):
    import network
    from meter.wifi import WifiManager
    wifi = WifiManager(network.WLAN(network.STA_IF), "mita-net", "mita-pass")
    steps(wifi, clock, 5000)
    assert wifi.is_up and wifi.connects == 1
    board.ap.schedule_outage(clock.now_ms() + 1000, 120000)
    steps(wifi, clock, 10000)
    assert not wifi.is_up and wifi.losses == 1 and wifi.down.is_set()
    steps(wifi, clock, 200000)
    assert wifi.is_up and wifi.connects == 2
    assert wifi.failures == 0


def test_wifi_manager_with_a_wrong_password_backs_off_and_never_comes_up(board, clock):
    import network
    from meter.wifi import WifiManager
    wlan = network.WLAN(network.STA_IF)
    wifi = WifiManager(wlan, "mita-net", "guess", backoff_max_ms=30000)
    steps(wifi, clock, 600000)
    assert not wifi.is_up and wifi.connects == 0
    # Capped backoff: ten minutes hold about 20 s of attempts + 30 s waits, not hundreds.
    assert 5 <= wifi.failures <= 25


def test_time_sync_sets_the_simulated_rtc_only_while_online(board, clock):
    import machine
    import network
    import ntptime
    from meter.clock import Clock
    from meter.ntp import TimeSync
    from meter.wifi import WifiManager
    meter_clock = Clock(machine.RTC())
    wifi = WifiManager(network.WLAN(network.STA_IF), "mita-net", "mita-pass")
    sync = TimeSync(meter_clock, ntptime, poll_s=1)
    assert sync.step(wifi.is_up) and sync.syncs == 0  # offline: no query
    steps(wifi, clock, 5000)
    sync.step(wifi.is_up)
    assert sync.syncs == 1 and sync.failures == 0
    assert abs(meter_clock.now() - clock.epoch_ms() // 1000) <= 1
