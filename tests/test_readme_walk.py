"""README.md's walk from `make cloud` to a customer, a meter and a payment, run line by line
against a real `python -m cloud serve` (embedded store and Daraja stand-in), so it stays true."""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def _walk():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("From there to a customer")
    block = re.search(r"^```sh\n(.*?)^```", text[start:], re.S | re.M).group(1)
    return [line for line in block.splitlines() if line.startswith("curl ")]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cloud(tmp_path):
    port = _free_port()
    env = dict(os.environ, PORT=str(port), MITA_MQTT="off",
               MITA_SQLITE_PATH=str(tmp_path / "mita.sqlite3"), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "cloud", "serve"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = proc.stdout.readline()
        key = re.search(r"operator API key \(this run only\): (\S+)", first).group(1)
        yield port, key
    finally:
        proc.terminate()
        proc.wait(30)


def _run(line, port, values):
    for name, value in values.items():
        line = line.replace(f"<{name}>", value)
    line = line.replace("localhost:3000", f"127.0.0.1:{port}")
    # --retry-connrefused: the server may still be binding its port when the first line runs
    done = subprocess.run(["bash", "-c", line.replace("curl -s", "curl -s --retry 20 "
                                                      "--retry-connrefused --retry-delay 0", 1)],
                          env=dict(os.environ, OP=values["OP"]), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_readme_walk_makes_a_customer_a_meter_and_a_payment(cloud):
    port, operator_key = cloud
    users, meters, push, status, transactions = _walk()
    values = {"OP": operator_key}
    user = _run(users, port, values)
    values.update(USER_ID=user["user_id"], API_KEY=user["api_key"])
    assert _run(meters, port, values)["meter_no"] == "MITA0001"
    pending = _run(push, port, values)
    assert pending["status"] == "pending"
    values["CHECKOUT"] = pending["checkout_request_id"]
    for _ in range(100):  # the stand-in calls back about a second later
        paid = _run(status, port, values)
        if paid["status"] != "pending":
            break
        time.sleep(0.1)
    assert paid["status"] == "success" and paid["transaction_id"].startswith("TXN_")
    [tx] = _run(transactions, port, values)
    assert tx["amount_cents"] == 5000 and tx["meter_no"] == "MITA0001"


def _offline_walk():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("Pay while the meter is offline, type the token")
    block = re.search(r"^```sh\n(.*?)^```", text[start:], re.S | re.M).group(1)
    return [line for line in block.splitlines() if line.startswith(".venv/bin/python ")]


def test_the_readme_offline_walk_credits_the_payments_token_on_the_keypad(cloud, tmp_path):
    """The walk above, then its offline part: the payment's token, the provisioned token key,
    the keypad scenario made from them, and the token typed through the panel's keys."""
    import asyncio
    import simulator
    from simulator.clock import VirtualClock
    from simulator.panel import Controls
    from simulator.scenario import Scenario
    port, operator_key = cloud
    users, meters, push, status, transactions = _walk()
    values = {"OP": operator_key}
    user = _run(users, port, values)
    values.update(USER_ID=user["user_id"], API_KEY=user["api_key"])
    values["DEVICE_KEY"] = _run(meters, port, values)["device_key"]
    values["CHECKOUT"] = _run(push, port, values)["checkout_request_id"]
    for _ in range(100):
        if _run(status, port, values)["status"] != "pending":
            break
        time.sleep(0.1)
    [tx] = _run(transactions, port, values)
    assert re.fullmatch(r"\d{3} \d{3} \d{3}", tx["token"]), tx
    provision_line, scenario_line, run_line = _offline_walk()
    for line in (provision_line, scenario_line):  # build/ of this test, not of the checkout
        line = line.replace("<DEVICE_KEY>", values["DEVICE_KEY"]).replace(
            "build/", str(tmp_path) + "/").replace(".venv/bin/python", sys.executable, 1)
        done = subprocess.run(["bash", "-c", line], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
    scenario_file = run_line.split("--scenario ")[1].replace("build/", str(tmp_path) + "/")
    scenario = Scenario.from_file(scenario_file)
    clock = simulator.install(VirtualClock())
    meter = scenario.make_meter(clock, str(tmp_path / "flash"))
    controls = Controls(meter)
    seen = []

    async def type_it():
        meter.start(asyncio.get_running_loop())
        await asyncio.sleep(2)
        start = meter.app.ledger.total_credited
        for _ in range(2):  # typed twice: credited once
            for ch in tx["token"].replace(" ", "") + "#":
                assert controls.key(ch)
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            seen.append(([l.strip() for l in meter.board.lcd.lines()],
                         meter.app.ledger.total_credited - start))
        meter.stop()
    clock.run(type_it())
    assert seen == [(["TOKEN ACCEPTED", "+KES 50.00"], 5000), (seen[1][0], 5000)]
    assert seen[1][0][0] == "TOKEN USED"
