# One simulated meter as a runner sees it: its board (world, devices, flash) and the firmware
# app running on it as an asyncio task, stopped dead by a power cut and started again on every
# reset. The app itself is supplied by the caller (the firmware's app entry, when wired).
import asyncio

from simulator import board_context
from simulator.sim_board import POWER_OFF, POWER_ON, RESET, BoardReset, SimBoard
from simulator.devices.flash import PowerLost


class SimulatedMeter:
    """app_factory(meter) -> coroutine: one boot of the firmware, run with this board current."""

    def __init__(self, config, world, flash_dir, clock, app_factory=None, meter_id=None, seed=1):
        self.config = config
        self.world = world
        self.clock = clock
        self.meter_id = meter_id or config.get("meter_id") or "sim-%04d" % seed
        self.board = SimBoard(world, flash_dir, clock, rig=config, meter_id=self.meter_id,
                              seed=seed)
        self.app_factory = app_factory
        self.task = None
        self.boots = 0
        self.crashes = []  # (virtual ms, repr of the exception) when the app died by itself
        self.board.on_event = self._on_event

    def start(self, loop=None):
        loop = loop or asyncio.get_event_loop()
        self._loop = loop
        self.board.attach(loop)
        if self.board.powered:
            self._boot()

    def stop(self):
        self.board.detach()
        self._kill()

    def _boot(self):
        self._kill()
        self.board.flash.disarm()
        self.boots += 1
        if self.app_factory is not None:
            coro = self._run_app()
            self.task = board_context.create_task(self.board, coro, loop=self._loop,
                                                  name="meter-%s" % self.meter_id)

    def _kill(self):
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()

    async def _run_app(self):
        try:
            await self.app_factory(self)
        except (BoardReset, PowerLost, asyncio.CancelledError):
            pass  # the board reset or lost power under it: nothing of this boot survives
        except Exception as exc:  # noqa: BLE001 - on a device an uncaught error ends main.py
            self.crashes.append((self.clock.now_ms(), repr(exc)))

    def _on_event(self, kind, cause):
        if kind == POWER_OFF:
            self.board.flash.power_down()
            self._kill()
        elif kind in (POWER_ON, RESET):
            self._boot()
