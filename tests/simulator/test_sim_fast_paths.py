"""The simulator's shortcuts for the common case (a healthy PZEM polled with one request, mains
without cuts, the clock looked up per tick) give exactly what the long way gives."""
from simulator import board_context
from simulator.clock import VirtualClock, active_clock, install
from simulator.devices.pzem import Pzem004t, read_request
from simulator.world import SteadyLoad, World

READ_ALL = read_request()


def make_world(watts=1000):
    clock = VirtualClock()
    return clock, World(clock, SteadyLoad(watts, pf_centi=90), seed=3)


def test_a_trusted_request_spoiled_afterwards_is_still_ignored():
    _, world = make_world()
    pzem = Pzem004t(world)
    assert len(pzem.handle(READ_ALL)) == 25
    assert len(pzem.handle(READ_ALL)) == 25  # the same request again: answered
    for spoiled in (READ_ALL[:-1] + bytes((READ_ALL[-1] ^ 1,)), READ_ALL[:-1], READ_ALL + b"\x00",
                    b"\x02" + READ_ALL[1:]):
        assert pzem.handle(spoiled) is None, spoiled
    assert len(pzem.handle(READ_ALL)) == 25
    assert pzem.requests == 7 and pzem.replies == 3


def test_faults_set_after_a_quiet_start_still_apply():
    _, world = make_world()
    pzem = Pzem004t(world)
    assert pzem.handle(READ_ALL) is not None
    pzem.inject("timeout")
    assert pzem.handle(READ_ALL) is None
    pzem.set_fault_rate("timeout", 1000000)
    assert pzem.handle(READ_ALL) is None
    pzem.set_fault_rate("timeout", 0)
    assert pzem.handle(READ_ALL) is not None
    assert pzem.faults_applied == {"timeout": 2}


def test_mains_without_cuts_then_with_one():
    clock, world = make_world()
    assert world.mains_on() and world.mains_on(10 ** 12)
    world.schedule_outage(5000, 1000)
    assert world.mains_on(4999) and not world.mains_on(5000) and world.mains_on(6000)
    clock.advance(5500)
    assert not world.mains_on()


class _Board:
    def __init__(self, clock):
        self.clock = clock


def test_active_clock_follows_the_current_board():
    installed = install(VirtualClock())
    mine = VirtualClock(start_ms=7000)
    assert active_clock() is installed
    token = board_context.activate(_Board(mine))
    try:
        assert active_clock() is mine
    finally:
        board_context.deactivate(token)
    assert active_clock() is installed


def test_energy_follows_every_change_made_inside_a_stretch_of_constant_power():
    clock, world = make_world(1000)
    kw_ms = 1000000  # 1 kW in mW; energies below in mW*ms
    clock.advance(5000)
    assert world.metered_mwms() == 5000 * kw_ms
    world.load = SteadyLoad(2000)  # swapped by hand, as a test does
    clock.advance(5000)
    assert world.metered_mwms() == 15000 * kw_ms
    world.relay_closed = False  # set directly, not through set_relay
    clock.advance(5000)
    assert world.metered_mwms() == 15000 * kw_ms and world.metered_power_mw() == 0
    world.set_relay(True)
    world.schedule_outage(clock.now_ms() + 1000, 2000)
    for _ in range(4):
        clock.advance(1000)
        world.sync()  # synced inside the cut and across both of its edges
    assert world.metered_mwms() == 15000 * kw_ms + 2 * 2000 * kw_ms
    assert world.unpowered_ms == 2000
    world.schedule_outage(clock.now_ms() + 500)  # open-ended, ended early by hand
    clock.advance(1000)
    world.restore_power()
    assert world.sensor_reading()[0] and world.sensor_reading()[3] == 20000
    clock.advance(1000)
    assert world.metered_mwms() == 15000 * kw_ms + 2 * 2000 * kw_ms + 2 * 1500 * kw_ms
    assert world.unpowered_ms == 2500
    world.set_extra_load(500)
    clock.advance(1000)
    assert world.metered_mwms() == 15000 * kw_ms + 2 * 2000 * kw_ms + 2 * 1500 * kw_ms + 2500 * kw_ms


def test_a_repeated_poll_answers_the_values_of_its_own_instant():
    clock, world = make_world(1000)
    pzem = Pzem004t(world)
    first = pzem.handle(READ_ALL)
    assert pzem.handle(READ_ALL) == first  # nothing moved: the very same frame
    clock.advance(3600)  # 1 Wh later
    later = pzem.handle(READ_ALL)
    assert later != first and later[13:15] == b"\x00\x01"  # energy low word: 1 Wh
    assert pzem.handle(read_request(0xF8)) != later  # another address in the reply
    assert pzem.handle(read_request(0xF8))[0] == 0xF8
    assert pzem.handle(read_request(1, 3, 1)) == pzem.handle(read_request(1, 3, 1))
    assert len(pzem.handle(read_request(1, 3, 1))) == 7
    world.set_extra_load(500)  # power moves, energy not yet: a new frame
    assert pzem.handle(READ_ALL) != later
