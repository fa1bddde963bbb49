"""The HIL suite's fixtures: one board on a serial port URL (--port), or a simulated board.

    pytest hil                              # starts python -m hil.simboard on a PTY
    pytest hil --port /dev/ttyUSB0          # a real board wired as hil/rigs/reference.json
    pytest hil --port socket://rig-7:4000 --rig hil/rigs/reference.json

The suite parks the board's /main.py and /config.json for the session (a running meter app
would start the hardware watchdog under the tests' feet) and puts them back at the end.
"""
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from hil.board import ReplBoard  # noqa: E402
from hil.meter_on_board import MeterOnBoard, SimRig, HostRig  # noqa: E402

PARKED_MAIN = "/main.py.hil-parked"
PARKED_CONFIG = "/config.json.hil-parked"


def pytest_addoption(parser):
    group = parser.getgroup("hil", "hardware in the loop")
    group.addoption("--port", default=None,
                    help="pyserial URL of the board: /dev/ttyUSB0, /dev/pts/N, socket://host:port "
                         "(default: start a simulated board)")
    group.addoption("--rig", default=None, help="rig wiring file (default: hil/rigs/"
                    "reference.json with --port, hil/rigs/simulated.json without)")
    group.addoption("--board-timeout", type=float, default=10.0,
                    help="seconds to wait for any one answer from the board")


@pytest.fixture(scope="session")
def rig(request):
    path = request.config.getoption("--rig")
    if path is None:
        name = "reference.json" if request.config.getoption("--port") else "simulated.json"
        path = os.path.join(HERE, "rigs", name)
    with open(path) as f:
        data = json.load(f)
    data["_path"] = os.path.abspath(path)
    return data


@pytest.fixture(scope="session")
def sim_process(request, rig, tmp_path_factory):
    """The simulated board's harness process, or None for a board given by --port."""
    if request.config.getoption("--port"):
        yield None
        return
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build_firmware
    from hil.simboard.launch import SimBoardProcess
    base = tmp_path_factory.mktemp("simboard")
    build = str(base / "build")
    errors = build_firmware.build(build)
    assert errors == [], errors
    pzem_pty = rig.get("pzem", {}).get("port") == "simboard"
    proc = SimBoardProcess(str(base / "flash"), firmware=build, rig=rig["_path"],
                           log_path=str(base / "harness.log"), pzem_pty=pzem_pty)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def board(request, rig, sim_process):
    port = sim_process.port if sim_process else request.config.getoption("--port")
    b = ReplBoard(port, timeout=request.config.getoption("--board-timeout"))
    b.open()
    if not b.exists("/lib/meter"):
        b.close()
        pytest.fail("no meter firmware on %s (/lib/meter is missing): "
                    "make deploy PORT=%s METER=... first" % (port, port))
    parked_main = b.exists("/main.py")
    if parked_main:
        b.rename("/main.py", PARKED_MAIN)
    parked_config = b.exists("/config.json")
    if parked_config:
        b.rename("/config.json", PARKED_CONFIG)
    # A reset with main.py parked: whatever watchdog the running app had started is gone.
    b.machine_reset()
    yield b
    try:
        b.enter_raw()
        b.remove("/config.json")
        if parked_config:
            b.rename(PARKED_CONFIG, "/config.json")
        if parked_main:
            b.rename(PARKED_MAIN, "/main.py")
        b.start("import machine\nmachine.reset()")
    finally:
        b.close()


@pytest.fixture(scope="session")
def rig_control(rig, board, sim_process):
    pzem = dict(rig.get("pzem", {}))
    if pzem.get("port") == "simboard":
        if sim_process is None:
            pytest.fail("rig %s needs the simulated board (no --port)" % rig["name"])
        pzem["port"] = sim_process.pzem_port
    if pzem.get("emulator") == "board":
        yield SimRig(board)
        return
    if pzem.get("emulator") == "host" and pzem.get("port"):
        from hil.pzem_host import HostPzem
        host = HostPzem(pzem["port"], address=pzem.get("address", 1),
                        baudrate=rig.get("uart", {}).get("baudrate", 9600),
                        relay_on_cts=pzem.get("relay_on_cts", False)).start()
        yield HostRig(host)
        host.stop()
        return
    yield None


@pytest.fixture
def meter(board, rig, rig_control, sim_process):
    """A meter with fresh state and the rig's test config, not yet booted."""
    m = MeterOnBoard(board, rig, rig_control, sim_process)
    m.prepare()
    yield m
    if rig_control is not None:
        rig_control.set_load(0)
        rig_control.sensor_fault(None)
