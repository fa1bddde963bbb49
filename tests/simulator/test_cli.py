"""The simulator's command line runs headless and prints its summaries; the panel's keys act on
the meter and its world, and the panel renders without a terminal."""
import asyncio
import os
import subprocess
import sys

import pytest
from rich.console import Console

from simulator.cli import main
from simulator.seam import ROOT
from simulator.panel import LOAD_STEP_W, RECHARGE_CENTS, Controls, render
from simulator.scenario import Scenario


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "simulator", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, COLUMNS="160"))
    return proc.returncode, proc.stdout + proc.stderr


def test_run_headless_prints_a_summary():
    code, out = run_cli("run", "--no-panel", "--seconds", "600", "--speed", "max")
    assert code == 0, out
    assert "true energy (Wh)" in out and "billed (Wh)" in out and "after 600 virtual s" in out
    assert "crash at" not in out


def test_run_headless_in_real_time_for_a_moment():
    code, out = run_cli("run", "--no-panel", "--seconds", "0.3", "--speed", "1")
    assert code == 0, out
    assert "balance (KES)" in out


def test_run_a_shipped_scenario_file():
    code, out = run_cli("run", "--no-panel", "--speed", "max", "--seconds", "10000",
                        "--scenario", os.path.join(ROOT, "scenarios", "steady-drain.yaml"))
    assert code == 0, out
    assert "disconnections" in out and "relay opened: no_credit" in out


def test_fleet_prints_a_progress_bar_and_a_summary_table():
    code, out = run_cli("fleet", "--meters", "3", "--days", "0.01")
    assert code == 0, out
    assert "fleet summary: 3 meters" in out and "TOTAL" in out
    assert "SIM00001" in out and "SIM00003" in out
    assert "meter-seconds/s" in out


def test_fleet_over_two_worker_processes_numbers_every_meter_once(capsys):
    console = Console(width=200, force_terminal=False)
    code = main(["fleet", "--meters", "4", "--days", "0.005", "--workers", "2", "--sensor",
                 "s0"], console=console)
    out = capsys.readouterr().out
    assert code == 0, out
    for n in range(1, 5):
        assert out.count("SIM%05d" % n) == 1, out


@pytest.mark.parametrize("argv", [
    ["run", "--speed", "fast-ish"],
    ["fleet", "--speed", "0"],
    ["fleet", "--sensor", "ct"],
    ["launch"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_a_bad_scenario_file_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("duration: soon\n")
    console = Console(width=200)
    assert main(["run", "--no-panel", "--scenario", str(path)], console=console) == 2
    assert "not a duration" in capsys.readouterr().out


def test_fast_forward_needs_no_panel(capsys):
    assert main(["run", "--speed", "max"], console=Console(width=200)) == 2
    assert "--no-panel" in capsys.readouterr().out


def test_fleet_rejects_an_empty_fleet(capsys):
    assert main(["fleet", "--meters", "0"], console=Console(width=200)) == 2


# --- the panel, without a terminal ------------------------------------------------------------

def test_panel_keys_drive_the_meter_and_the_render_shows_it(clock, tmp_path):
    scenario = Scenario({"start_balance_kes": 50, "load": {"watts": 200}})
    meter = scenario.make_meter(clock, str(tmp_path / "m"))
    controls = Controls(meter)
    console = Console(width=120, record=True)

    async def go():
        meter.start(asyncio.get_running_loop())
        await asyncio.sleep(5)
        assert controls.key("+") and controls.key("+")
        assert meter.world.demand_mw() == (200 + 2 * LOAD_STEP_W) * 1000
        controls.key("-")
        assert meter.world.demand_mw() == (200 + LOAD_STEP_W) * 1000
        await asyncio.sleep(5)
        console.print(render(meter, "x1", controls.extra_w))
        controls.key("r")
        assert meter.last_app.ledger.total_credited == RECHARGE_CENTS
        controls.key("w")
        assert not meter.board.ap.up(clock.now_ms())
        controls.key("w")
        assert meter.board.ap.up(clock.now_ms())
        controls.key("p")
        assert not meter.board.powered and meter.app is None
        console.print(render(meter, "x1", controls.extra_w))
        controls.key("p")
        await asyncio.sleep(3)
        assert meter.board.powered and meter.app is not None
        assert not controls.key("x")  # unknown keys do nothing
        controls.key("q")
        meter.stop()

    clock.run(go())
    assert controls.quit
    text = console.export_text()
    assert "|KES 50." in text or "|KES 49." in text  # the LCD's first line, as decoded
    assert "0.45kW" in text  # 200 W + one step of 250 W, on the LCD
    assert "OFF (power cut)" in text and "closed (load on)" in text


# --- the --cloud hook, against a real broker ---------------------------------------------------

MOSQUITTO = "/usr/sbin/mosquitto"


@pytest.fixture
def mosquitto(tmp_path):
    import socket
    import time
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed (%s)" % MOSQUITTO)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\n" % port)
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.01)
    yield port
    proc.terminate()
    proc.wait(5)


def test_cloud_hook_runs_the_firmware_link_and_a_recharge_arrives_over_mqtt(mosquitto, tmp_path):
    import json
    import threading
    import paho.mqtt.client as paho
    from simulator.clock import REAL, VirtualClock, install
    clock = install(VirtualClock(mode=REAL, speed=20))  # WiFi's 1.5 s join takes 75 ms
    from cloud.link import payloads as lp
    scenario = Scenario({"start_balance_kes": 10, "load": {"watts": 300},
                         "config": {"key": "dk_sim_test"}})
    meter = scenario.make_meter(clock, str(tmp_path / "m"), meter_id="MTR-SIM-1",
                                cloud_url="mqtt://127.0.0.1:%d" % mosquitto)
    acks = []
    dead = []
    subscribed = threading.Event()
    cloud = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="cloud")
    cloud.on_subscribe = lambda *a: subscribed.set()
    cloud.on_message = lambda c, u, msg: acks.append(json.loads(msg.payload))
    cloud.connect("127.0.0.1", mosquitto)
    cloud.subscribe("meters/MTR-SIM-1/recharge/ack", 1)
    cloud.loop_start()

    async def go():
        meter.start(asyncio.get_running_loop())
        assert subscribed.wait(5)
        for _ in range(400):  # until the meter's MQTT session is up (the log says so)
            if any("connected to 127.0.0.1" in line for _, line in meter.log):
                break
            await asyncio.sleep(0.5)
        cloud.publish("meters/MTR-SIM-1/recharge", lp.recharge_message(
            {"id": "QK1", "seq": 1, "amount_cents": 5000}, "MTR-SIM-1",
            lp.command_key("dk_sim_test", "MTR-SIM-1")), 1)
        for _ in range(400):
            if acks:
                break
            await asyncio.sleep(0.5)
        me = asyncio.current_task()
        firmware_tasks = [t for t in asyncio.all_tasks() if t is not me]
        meter.world.cut_power()
        meter.board.poll()
        await asyncio.sleep(0.1)
        # the power cut took the firmware's link with it: no ghost MQTT session survives
        dead.extend(t.done() for t in firmware_tasks)
        dead.append(not [t for t in asyncio.all_tasks() if t is not me])
        meter.stop()

    try:
        clock.run(go())
    finally:
        cloud.loop_stop()
        cloud.disconnect()
    assert meter.last_app.ledger.total_credited == 5000
    assert acks and acks[0]["seq"] == 1 and "applied" in json.dumps(acks[0])
    assert len(dead) >= 3 and all(dead)  # app, link, MQTT client (and WiFi, NTP)
    from simulator.devices import flash as flash_mod
    assert flash_mod._real_open[0] is None  # stopped while dead: open() is the builtin again


def test_keys_come_from_a_terminal_in_cbreak_mode_without_blocking_the_loop():
    import termios
    from simulator.clock import REAL, VirtualClock, install
    from simulator.panel import Keys
    # Real time: the pty hands bytes over asynchronously in the kernel, so the wait is real.
    clock = install(VirtualClock(mode=REAL))
    master, slave = os.openpty()
    got = []

    async def go():
        loop = asyncio.get_running_loop()
        with open(slave, "rb", buffering=0, closefd=False) as stream:
            before = termios.tcgetattr(slave)
            with Keys(loop, got.append, stream=stream):
                assert not termios.tcgetattr(slave)[3] & termios.ICANON  # cbreak: no line wait
                os.write(master, b"+p")  # no newline: keys arrive one by one
                for _ in range(500):
                    if len(got) == 2:
                        break
                    await asyncio.sleep(0.005)
            assert termios.tcgetattr(slave) == before  # the terminal is given back as it was

    try:
        clock.run(go())
    finally:
        os.close(master)
        os.close(slave)
    assert got == ["+", "p"]
