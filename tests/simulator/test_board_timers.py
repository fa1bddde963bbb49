"""The simulated board's event-loop timer: a watchdog fed every tick must not re-arm it each
time (a fleet of a thousand meters piled up cancelled timers), yet it still fires on time."""
import asyncio

import machine
from simulator.sim_board import RESET
from simulator.world import SteadyLoad


def _feed_every_second(board, clock, seconds, timeout_ms, then_hang_s=60):
    resets = []
    armed = []
    board.on_event = lambda kind, cause: resets.append((kind, cause, clock.now_ms()))

    async def firmware():
        loop = asyncio.get_running_loop()
        real_call_at = loop.call_at

        def counting_call_at(when, callback, *args, **kwargs):
            if callback == board._on_timer:  # not the firmware's own sleeps
                armed.append(when)
            return real_call_at(when, callback, *args, **kwargs)

        loop.call_at = counting_call_at
        board.attach(loop)
        wdt = machine.WDT(timeout=timeout_ms)
        for _ in range(seconds):
            await asyncio.sleep(1)
            wdt.feed()
        await asyncio.sleep(then_hang_s)
        board.detach()

    clock.run(firmware())
    return resets, armed


def test_feeding_does_not_rearm_the_timer_every_tick(make_board, clock):
    board = make_board(SteadyLoad(0))  # no load: no S0 pulses, the watchdog is all that is due
    resets, armed = _feed_every_second(board, clock, 600, 8000)
    # One timer per watchdog period (it fires, finds the dog fed, re-arms), not one per feed.
    assert len(armed) <= 600 // 7 + 5, len(armed)
    assert resets == [(RESET, machine.WDT_RESET, 600000 + 8000)]


def test_a_starved_watchdog_still_resets_at_its_deadline_under_load(make_board, clock):
    board = make_board(SteadyLoad(1000))  # S0 pulses keep their own timers going meanwhile
    resets, _ = _feed_every_second(board, clock, 100, 5000)
    assert resets == [(RESET, machine.WDT_RESET, 100000 + 5000)]


def test_a_watchdog_started_late_and_fed_once_fires_once(make_board, clock):
    board = make_board(SteadyLoad(0))
    resets, _ = _feed_every_second(board, clock, 1, 3000, then_hang_s=10)
    assert resets == [(RESET, machine.WDT_RESET, 1000 + 3000)]
