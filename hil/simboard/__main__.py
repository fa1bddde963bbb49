"""python -m hil.simboard --flash DIR [--firmware BUILD] [--config FILE] [--rig RIG.json]
                         [--pzem-pty]

Prints the /dev/pts/N path of the board's serial line (and with --pzem-pty, on a second line,
the host end of its PZEM UART), then runs until killed (SIGTERM/SIGINT):
`mpremote connect /dev/pts/N ...` and `pytest hil --port /dev/pts/N` talk to it.
"""
import argparse
import os
import shutil
import signal
import sys
import threading

from hil.simboard.harness import SimBoard


def install_firmware(build_dir, flash_dir):
    """A factory-flashed board: the build's main.py and lib/ copied onto the flash folder."""
    for base, _, files in os.walk(build_dir):
        rel = os.path.relpath(base, build_dir)
        for name in files:
            dest = os.path.normpath(os.path.join(flash_dir, rel, name))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(os.path.join(base, name), dest)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flash", required=True, help="folder that is the board's flash")
    parser.add_argument("--firmware", help="built firmware (tools/build_firmware.py --out) "
                        "to put onto the flash before the first boot")
    parser.add_argument("--config", help="a meter config.json to put at /config.json")
    parser.add_argument("--rig", help="rig wiring (hil/rigs/*.json) for the simulated hardware")
    parser.add_argument("--heap", default="512k", help="MicroPython heap size")
    parser.add_argument("--pzem-pty", action="store_true",
                        help="wire the PZEM UART to a second PTY (printed on the second line) "
                             "for an emulator on the host, as on the reference rig")
    parser.add_argument("--verbose", action="store_true", help="log harness events to stderr")
    args = parser.parse_args(argv)
    os.makedirs(args.flash, exist_ok=True)
    if args.firmware:
        install_firmware(args.firmware, args.flash)
    if args.config:
        shutil.copyfile(args.config, os.path.join(args.flash, "config.json"))
    log = (lambda text: print("simboard:", text, file=sys.stderr, flush=True)) \
        if args.verbose else None
    board = SimBoard(args.flash, rig_path=args.rig, heap=args.heap, log=log,
                     pzem_pty=args.pzem_pty)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())
    # SIGUSR1 is the reset button, SIGUSR2 a power cycle (pull the plug, plug it back).
    signal.signal(signal.SIGUSR1, lambda *_: board.press_reset(2))
    signal.signal(signal.SIGUSR2, lambda *_: board.press_reset(1))
    port = board.start()
    print(port, flush=True)
    if board.pzem_port:
        print(board.pzem_port, flush=True)
    try:
        while not done.wait(0.2):
            if board.stopped():
                break
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
