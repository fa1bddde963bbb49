# Simulator tests import the `simulator` package and find the fake MicroPython modules
# (machine, network, ...) where the firmware would: simulator.install() puts them on the path.
import pytest

import simulator

simulator.install()


@pytest.fixture
def clock():
    from simulator.clock import VirtualClock
    return simulator.install(VirtualClock())


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
