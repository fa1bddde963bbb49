# The board process: builds the simulated hardware, mounts the flash folder as "/", and hands
# the serial line to the REPL. Run under the MicroPython unix port by the harness:
#   micropython simboard_main.py FLASH_DIR CAUSE MODE RTC_EPOCH_MS RIG_JSON|- LOAD_W FAULT|-
#                                PZEM_UART_DEVICE|-
# MODE: "boot" (hardware reset: main.py runs), "soft" (from the friendly REPL), "soft-raw".
import json
import os
import sys

from clock import VirtualClock, REAL
from world import World, SteadyLoad
import board_context
import sim_board
from simboard_hw import HilBoard, SideChannel
from simboard_repl import Repl



def main(argv):
    flash, cause, mode, rtc_ms, rig_path, load_w, fault, uart_dev = argv[1:9]
    rig = None
    if rig_path != "-":
        with open(rig_path) as f:
            rig = json.load(f)
    channel = SideChannel()
    clock = VirtualClock(REAL)
    world = World(clock, SteadyLoad(0))
    board = HilBoard(world, flash, clock, rig, channel, int(cause), int(rtc_ms))
    board_context.set_default(board)
    if uart_dev != "-":
        board.wire_uart(uart_dev)
    # Everything the firmware may import from the host is imported now: once the flash is
    # mounted as "/", the host's files are out of reach, as on a real board.
    import machine  # noqa: F401
    import network  # noqa: F401
    import esp32  # noqa: F401
    import ntptime  # noqa: F401
    import sim_rig
    sim_rig.attach(channel)
    sim_rig.restore(int(load_w), fault)
    os.umount("/")
    os.mount(os.VfsPosix(flash), "/")
    os.use_flash(flash)
    os.chdir("/")
    sys.path[:] = ["", "/lib", ".frozen"]
    repl = Repl(channel)
    if mode == "boot":
        repl.write(b"rst:0x%x, boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n" % int(cause))
    else:
        repl.write(b"MPY: soft reboot\r\n")
    return repl.life(run_main=mode != "soft-raw", raw=mode == "soft-raw")


sys.exit(main(sys.argv))
