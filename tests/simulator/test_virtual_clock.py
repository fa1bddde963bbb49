"""The virtual clock: ticks arithmetic, fast-forwarded asyncio timers, real and scaled time."""
import asyncio
import time

import pytest

from simulator import board_context
from simulator.clock import (FAST, REAL, TICKS_PERIOD, ClockError, VirtualClock, install,
                             ticks_add, ticks_diff)


def test_ticks_wrap_like_micropython():
    assert ticks_add(TICKS_PERIOD - 10, 25) == 15
    assert ticks_diff(15, TICKS_PERIOD - 10) == 25
    assert ticks_diff(TICKS_PERIOD - 10, 15) == -25
    assert ticks_diff(ticks_add(0, -1), 0) == -1
    clock = VirtualClock(start_ms=TICKS_PERIOD - 5)
    before = clock.ticks_ms()
    clock.advance(10)
    assert clock.ticks_ms() == 5 and ticks_diff(clock.ticks_ms(), before) == 10


def test_fast_mode_moves_only_when_told():
    clock = VirtualClock()
    t0 = clock.now_ms()
    assert clock.now_ms() == t0
    clock.advance(1500)
    clock.sleep_ms(500)  # a blocking sleep is instant and moves virtual time
    assert clock.now_ms() == t0 + 2000
    clock.advance_to(t0 + 1000)  # the past is ignored
    assert clock.now_ms() == t0 + 2000
    with pytest.raises(ClockError):
        clock.advance(-1)
    with pytest.raises(ClockError):
        VirtualClock(mode="sideways")


def test_epoch_follows_virtual_time():
    clock = VirtualClock(epoch_ms=1767225600000)
    clock.advance(86400 * 1000)
    assert clock.epoch_ms() == 1767225600000 + 86400 * 1000


def test_installed_time_functions_follow_the_clock():
    clock = install(VirtualClock())
    start = time.ticks_ms()
    time.sleep_ms(250)
    assert time.ticks_diff(time.ticks_ms(), start) == 250
    assert time.ticks_add(start, 5) == (start + 5) % TICKS_PERIOD
    assert hasattr(asyncio, "sleep_ms")


def test_an_hour_of_asyncio_sleep_passes_in_virtual_time():
    clock = VirtualClock()

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - t0

    assert clock.run(main()) == pytest.approx(3600, abs=1e-3)
    assert clock.now_ms() == 3600 * 1000


def test_timer_order_is_kept():
    clock = VirtualClock()
    seen = []

    async def sleeper(name, seconds):
        await asyncio.sleep(seconds)
        seen.append((name, clock.now_ms()))

    async def main():
        await asyncio.gather(sleeper("c", 30), sleeper("a", 0.5), sleeper("b", 2),
                             sleeper("d", 86400), sleeper("a2", 0.5))

    clock.run(main())
    assert seen == [("a", 500), ("a2", 500), ("b", 2000), ("c", 30000), ("d", 86400000)]


def test_periodic_task_ticks_exactly():
    clock = install(VirtualClock())
    stamps = []

    async def every_second():
        for _ in range(5):
            await asyncio.sleep_ms(1000)
            stamps.append(time.ticks_ms())

    clock.run(every_second())
    assert [time.ticks_diff(b, a) for a, b in zip(stamps, stamps[1:])] == [1000] * 4


def test_event_set_by_a_timer_wakes_the_waiter():
    clock = VirtualClock()

    async def main():
        ev = asyncio.Event()
        asyncio.get_running_loop().call_later(42, ev.set)
        await ev.wait()
        return clock.now_ms()

    assert clock.run(main()) == 42000


def test_wait_for_timeout_in_virtual_time():
    clock = VirtualClock()

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 10)
        return clock.now_ms()

    assert clock.run(main()) == 10000


def test_scaled_real_time_runs_faster_than_the_wall():
    clock = VirtualClock(mode=REAL, speed=2000)

    async def main():
        await asyncio.sleep(2)  # 2 virtual seconds: about a millisecond of wall time

    t0 = clock.now_ms()
    clock.run(main())
    assert clock.now_ms() - t0 >= 2000
    assert clock.mode == REAL and VirtualClock().mode == FAST


def test_many_boards_each_see_their_own_clock(tmp_path):
    from simulator.sim_board import SimBoard
    from simulator.world import SteadyLoad, World

    shared = install(VirtualClock())
    other = VirtualClock(start_ms=123456)
    board = SimBoard(World(other, SteadyLoad(1)), str(tmp_path / "b"), other)
    assert board_context.run_in(board, time.ticks_ms) == 123456
    assert time.ticks_ms() == shared.ticks_ms()


def test_fleet_clock_can_make_blocking_sleeps_free():
    clock = VirtualClock(sleep_advances=False)
    clock.sleep_ms(2)  # an LCD driver's busy-wait, repeated by a thousand meters
    assert clock.now_ms() == 0
