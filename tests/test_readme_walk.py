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
