"""The simulated board behind a PTY, and the tools around the HIL suite, inside `make test`.

An unmodified mpremote drives the simulated board (exec, fs cp, fs ls, run, soft-reset, mip);
tools/deploy.py copies and verifies the firmware on it; the HIL suite itself runs against it
through --port, as it would against /dev/ttyUSB0. No test waits on wall-clock time.
"""
import json
import os
import re
import subprocess
import sys

import pytest
import serial

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, ROOT)

import build_firmware  # noqa: E402
import deploy  # noqa: E402
import flash  # noqa: E402
import provision  # noqa: E402
from hil.board import ReplBoard  # noqa: E402
from hil.simboard.launch import SimBoardProcess, wait_gone  # noqa: E402

MPREMOTE = deploy.mpremote_cmd()


def mpremote(port, *args, timeout=60):
    proc = subprocess.run(MPREMOTE + ["connect", port] + list(args), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def board_pids(log_path):
    with open(log_path) as f:
        return [int(p) for p in re.findall(r"board up: pid (\d+)", f.read())]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("fw") / "build")
    assert build_firmware.build(out) == []
    return out


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A blank simulated board (nothing on its flash), as a new ESP32 after `make flash`."""
    base = tmp_path_factory.mktemp("sim")
    proc = SimBoardProcess(str(base / "flash"), rig=os.path.join(ROOT, "hil", "rigs",
                                                                 "simulated.json"),
                           log_path=str(base / "harness.log"))
    proc.start()
    yield proc
    proc.stop()


# --- an unmodified mpremote against the simulated board ----------------------------------------

def test_mpremote_exec(sim):
    assert mpremote(sim.port, "exec", "print(6 * 7)").strip() == "42"


def test_the_simulated_board_holds_the_firmware_frozen_when_the_32_bit_build_exists(sim):
    from hil.simboard.harness import FROZEN_BUILD
    if not os.path.exists(FROZEN_BUILD) or os.environ.get("MITA_SIMBOARD_MICROPYTHON"):
        pytest.skip("no frozen 32-bit build here (make micropython), or another one chosen")
    out = mpremote(sim.port, "exec", "import sys, meter.app\n"
                                     "print(sys.maxsize, meter.app.__file__)").split()
    # a 32-bit word, and the package from the image (named by its manifest path), not a file
    assert out == ["2147483647", "meter/app.py"]


def test_mpremote_exec_reports_the_error_of_the_board(sim):
    proc = subprocess.run(MPREMOTE + ["connect", sim.port, "exec", "1 / 0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "ZeroDivisionError" in proc.stdout + proc.stderr


def test_mpremote_fs_cp_ls_and_back(sim, tmp_path):
    data = bytes(range(256)) * 40 + b"\x03\x04\x01\x02\x05A\x01"  # REPL control bytes inside
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    mpremote(sim.port, "fs", "cp", str(src), ":blob.bin")
    with open(os.path.join(sim.flash, "blob.bin"), "rb") as f:
        assert f.read() == data  # it landed on the board's flash, byte for byte
    listing = mpremote(sim.port, "fs", "ls", ":")
    assert re.search(r"\b%d blob\.bin" % len(data), listing), listing
    back = tmp_path / "back.bin"
    mpremote(sim.port, "fs", "cp", ":blob.bin", str(back))
    assert back.read_bytes() == data
    mpremote(sim.port, "fs", "rm", ":blob.bin")
    assert "blob.bin" not in mpremote(sim.port, "fs", "ls", ":")


def test_mpremote_run(sim, tmp_path):
    script = tmp_path / "hello.py"
    script.write_text("import sys\nprint('hello from', sys.implementation.name, 2 ** 10)\n")
    assert "hello from micropython 1024" in mpremote(sim.port, "run", str(script))


def test_the_board_survives_between_sessions_and_soft_reset_clears_it(sim):
    mpremote(sim.port, "exec", "kept = 'still here'")
    assert mpremote(sim.port, "resume", "exec", "print(kept)").strip() == "still here"
    out = mpremote(sim.port, "soft-reset", "exec", "print('kept' in globals())")
    assert out.strip() == "False"


def test_garbage_on_the_serial_line_does_not_wedge_the_board(sim):
    with serial.serial_for_url(sim.port, timeout=0.2) as s:
        s.write(bytes(range(5, 256)) + b"\r\n\x02" + bytes(range(5, 256)) + b"\r\x01\x05A")
        s.read(100000)
    assert mpremote(sim.port, "exec", "print('alive')").strip() == "alive"


def test_mip_install_from_the_package_json(sim):
    out = mpremote(sim.port, "mip", "install", "--target", "/mip",
                   os.path.join(ROOT, "firmware", "package.json"),
                   "+", "exec", "import sys\nsys.path.insert(0, '/mip')\nimport meter\n"
                   "import meter.app\nprint(meter.VERSION)")
    assert out.strip().splitlines()[-1] == deploy.package_manifest()["version"]


def test_package_json_lists_every_firmware_module():
    with open(os.path.join(ROOT, "firmware", "package.json")) as f:
        committed = json.load(f)
    assert committed == deploy.package_manifest(), \
        "firmware/package.json is stale: python tools/deploy.py --package-json"


# --- deploy, then the HIL suite through --port ---------------------------------------------------

def test_deploy_copies_and_verifies_by_hashes_on_the_board(sim, build, tmp_path):
    config = provision.write_config(provision.build_config(
        "MITA-0042", "home", "pw", "mqtt.local:1884", key="dk_test"), str(tmp_path / "c.json"))
    hashes = deploy.deploy(sim.port, build, config, log=lambda *_: None)
    for remote, digest in hashes.items():
        with open(os.path.join(sim.flash, remote.lstrip("/")), "rb") as f:
            assert deploy.sha256_file(f.name) == digest
    assert "/lib/meter/app.mpy" in hashes and "/config.json" in hashes
    assert deploy.verify(sim.port, build, config) == []
    # A file damaged on the board is caught by the hash the board computes.
    with open(os.path.join(sim.flash, "lib", "meter", "ledger.mpy"), "r+b") as f:
        f.seek(10)
        f.write(b"\x00\xff")
    bad = deploy.verify(sim.port, build, config)
    assert len(bad) == 1 and bad[0].startswith("/lib/meter/ledger.mpy")
    deploy.deploy(sim.port, build, config, log=lambda *_: None)
    assert deploy.verify(sim.port, build, config) == []
    # The deployed firmware boots the meter from the provisioned config (the Ctrl-C that
    # opens the session may stop main.py before it has built `app`, so boot it here).
    with ReplBoard(sim.port) as b:
        assert b.eval("__import__('meter.boot').boot.start().config['meter_id']") == "MITA-0042"
        assert b.exists("/main.py") and not b.exists(deploy.PARKED_MAIN)


def test_hil_suite_passes_against_the_board_on_port(sim):
    """The suite as a real board sees it (--port): parks main.py, resets by machine.reset()."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           os.path.join(ROOT, "hil"), "--port", sim.port,
                           "--rig", os.path.join(ROOT, "hil", "rigs", "simulated.json")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"\d+ passed", out) and " failed" not in out, out[-2000:]
    assert "keypad" not in out, out[-2000:]  # the tokens typed on its keypad ran, not skipped


def test_hil_suite_starts_and_cleans_up_its_own_board(tmp_path):
    log = tmp_path / "pids"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           os.path.join(ROOT, "hil"), "-k", "firmware_version",
                           "--basetemp", str(tmp_path / "bt")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    harness_log = next((tmp_path / "bt").glob("simboard*/harness.log"))
    pids = board_pids(str(harness_log))
    assert pids, harness_log.read_text()
    assert all(wait_gone(pid) for pid in pids)
    log.write_text(" ".join(map(str, pids)))


def test_hil_suite_with_the_pzem_emulator_on_a_second_pty():
    """The reference rig's wiring, simulated: the firmware's PZEM UART leaves the board process
    on a PTY and the emulator answers from the test host (load and faults set there)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           os.path.join(ROOT, "hil"),
                           "-k", "relay_pin or sensor_fault and timeout",
                           "--rig", os.path.join(ROOT, "hil", "rigs", "simulated-pty.json")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"\b2 passed", out), out[-2000:]


def test_stopping_the_harness_ends_the_board_process(tmp_path):
    p = SimBoardProcess(str(tmp_path / "flash"), log_path=str(tmp_path / "h.log"))
    p.start()
    with ReplBoard(p.port) as b:
        assert b.eval("1 + 1") == 2
    pids = board_pids(str(tmp_path / "h.log"))
    harness = p.proc.pid
    p.stop()
    assert wait_gone(harness) and all(wait_gone(pid) for pid in pids)


# --- flash and provision -----------------------------------------------------------------------

def test_flash_without_firmware_says_where_to_get_one():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "flash.py"),
                           "--port", "/dev/ttyUSB0"], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, FIRMWARE=""))
    assert proc.returncode == 2
    assert "micropython.org/download/ESP32_GENERIC" in proc.stderr
    assert "mpflash" in proc.stderr and "FIRMWARE=" in proc.stderr


def test_flash_refuses_a_file_that_is_not_a_firmware_image(tmp_path):
    bad = tmp_path / "firmware.uf2"
    bad.write_bytes(b"UF2\n" + bytes(100))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "flash.py"),
                           "--port", "/dev/ttyUSB0", "--firmware", str(bad), "--dry-run"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not an ESP32 firmware image" in proc.stderr


@pytest.mark.parametrize("output, chip, offset", [
    ("Detecting chip type... ESP32\nChip is ESP32-D0WD-V3 (revision v3.1)", "esp32", 0x1000),
    ("Connected to ESP32-S3 on /dev/ttyACM0:\nChip type:          ESP32-S3 (QFN56)", "esp32s3", 0),
    ("Detecting chip type... ESP32-C3\nChip is ESP32-C3 (QFN32)", "esp32c3", 0),
])
def test_flash_detects_the_chip_and_its_offset(output, chip, offset, tmp_path):
    assert flash.chip_from_output(output) == chip
    image = tmp_path / "fw.bin"
    image.write_bytes(b"\xe9" + bytes(64))
    flash.check_image(str(image))
    cmds = flash.commands("/dev/ttyUSB0", chip, str(image))
    assert cmds[0][-1] == "erase-flash"
    assert cmds[1][-3:] == ["write-flash", hex(offset), str(image)]
    assert flash.chip_from_output("A fatal error occurred: Failed to connect") is None


def test_provision_from_arguments(tmp_path):
    path = str(tmp_path / "m" / "config.json")
    assert provision.main(["--meter", "MITA-7", "--ssid", "s", "--password", "p", "--broker",
                           "mq.example:8883", "--tls", "--key", "dk_1", "--set",
                           "initial_balance_cents=500", "--out", path]) == 0
    with open(path) as f:
        cfg = json.load(f)
    assert cfg["meter_id"] == "MITA-7" and cfg["key"] == "dk_1"
    assert cfg["mqtt"]["host"] == "mq.example" and cfg["mqtt"]["port"] == 8883
    assert cfg["mqtt"]["tls"] is True and cfg["mqtt"]["user"] == "MITA-7"
    assert cfg["initial_balance_cents"] == 500
    assert os.stat(path).st_mode & 0o077 == 0  # it holds the device key
    with pytest.raises(provision.ProvisionError):
        provision.build_config("meters/#")
    with pytest.raises(provision.ProvisionError):
        provision.parse_broker("host:70000")


def test_provision_from_the_cloud_registration(tmp_path):
    import http.server
    import threading
    seen = []

    class Cloud(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers["Authorization"], body))
            ok = self.headers["Authorization"] == "Bearer op_good"
            reply = {"meter_no": body["meter_no"], "device_key": "dk_from_cloud"} if ok \
                else {"error": "forbidden"}
            data = json.dumps(reply).encode()
            self.send_response(201 if ok else 403)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Cloud)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % server.server_port
    try:
        out = str(tmp_path / "c.json")
        assert provision.main(["--meter", "MITA-9", "--cloud", url, "--operator-key", "op_good",
                               "--user-id", "u1", "--out", out]) == 0
        with open(out) as f:
            assert json.load(f)["key"] == "dk_from_cloud"
        assert seen[0] == ("/api/meters", "Bearer op_good", {"meter_no": "MITA-9",
                                                              "user_id": "u1"})
        assert provision.main(["--meter", "MITA-9", "--cloud", url, "--operator-key", "op_bad",
                               "--out", str(tmp_path / "d.json")]) == 2
        assert not os.path.exists(tmp_path / "d.json")
    finally:
        server.shutdown()
