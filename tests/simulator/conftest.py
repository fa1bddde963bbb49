# Simulator tests import the `simulator` package from the repository root and find the fake
# MicroPython modules (machine, network, ...) on simulator/hal, as the firmware would.
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for path in (os.path.join(ROOT, "simulator", "hal"), ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture
def clock():
    from simulator.clock import VirtualClock, install
    return install(VirtualClock())


@pytest.fixture
def make_board(tmp_path, clock):
    """make_board(load=None, rig=None, seed=1) -> a SimBoard made current for the test."""
    from simulator import board_context
    from simulator.sim_board import SimBoard
    from simulator.world import SteadyLoad, World

    made = []

    def make(load=None, rig=None, seed=1, name="m1"):
        world = World(clock, load if load is not None else SteadyLoad(1000), seed=seed)
        board = SimBoard(world, str(tmp_path / name), clock, rig=rig, meter_id=name, seed=seed)
        made.append(board_context.activate(board))
        return board

    yield make
    for token in reversed(made):
        board_context.deactivate(token)
