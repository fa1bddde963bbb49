# The firmware's board on the simulator: a latching relay whose contacts are closed at boot
# while the meter must be open (no credit, or a lost state) gets its reset pulse.
import copy

import simulator


def _firmware_board_and_latching_config():
    """The firmware's Board class and a rig config with a latching relay and no LCD."""
    simulator.install()  # the firmware's meter package, beside the fakes
    from meter.config import DEFAULTS
    from meter.board import Board
    cfg = copy.deepcopy(DEFAULTS)
    cfg["relay"] = {"active_low": False, "latching": True, "pulse_ms": 50}
    cfg["pins"]["relay_reset"] = 27
    cfg["lcd"]["enabled"] = False
    return Board, cfg


def test_latching_contacts_left_closed_are_opened_at_boot_without_credit(make_board):
    Board, cfg = _firmware_board_and_latching_config()
    board = make_board(rig=cfg)
    board.world.set_relay(True)  # contacts closed when the power went (or the state was lost)
    fw_board = Board(cfg, relay_closed=False)  # what relay_at_boot() says: no credit
    assert not board.world.relay_closed  # the load is cut at boot
    assert not fw_board.relay.is_closed()


def test_latching_contacts_already_where_wanted_do_not_move(make_board):
    Board, cfg = _firmware_board_and_latching_config()
    board = make_board(rig=cfg)
    board.world.set_relay(True)
    switches = board.world.relay_switches if hasattr(board.world, "relay_switches") else None
    fw_board = Board(cfg, relay_closed=True)
    assert board.world.relay_closed and fw_board.relay.is_closed()
    if switches is not None:
        assert board.world.relay_switches == switches  # no flicker
