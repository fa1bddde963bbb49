"""A whole meter (MeterApp on fake hardware + meter.link + the firmware MQTT client) against a
real broker, with a minimal cloud stand-in on the other side speaking docs/protocol.md."""
import asyncio
import json
import os
import sys

import pytest

import simulator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "firmware"))

from appfakes import LINK_DEVICE_KEY, FakeBoard, ManualClock, linked_meter  # noqa: E402
from meter import config as meter_config  # noqa: E402
from meter.app import MeterApp  # noqa: E402
from meter.command_auth import command_key, sign  # noqa: E402
from meter.storage import StateStore  # noqa: E402
from test_mqtt_client import Meter, until  # noqa: E402

MID = "MTR-E1"
P = "meters/%s/" % MID


class Cloud(Meter):
    """Records what the meter says; acknowledges history as the bridge would."""

    def __init__(self, broker):
        super().__init__(broker, "cloud", "cpw", subs=[("meters/#", 1)])
        self.history = []
        self.acks = []
        self.status = []

    def got(self, topic, payload, retained):
        super().got(topic, payload, retained)
        if topic not in (P + "history", P + "recharge/ack", P + "status"):
            return  # its own commands, which it also sees on meters/#
        msg = json.loads(payload)
        if topic == P + "history":
            self.history.append(msg)
            self.client.publish(P + "history/ack", self.signed("history/ack", {"seq": msg["seq"]}),
                                1)
        elif topic == P + "recharge/ack":
            self.acks.append(msg)
        elif topic == P + "status":
            self.status.append(msg)

    def signed(self, cmd, body):
        """As the cloud sends it: command and meter named, signed with the meter's key."""
        text = json.dumps(dict({"v": 1, "cmd": cmd, "meter": MID}, **body)).encode()
        return sign(command_key(LINK_DEVICE_KEY, MID), text)

    def recharge(self, seq, amount):
        self.client.publish(P + "recharge", self.signed("recharge", {
            "id": "QK%d" % seq, "seq": seq, "amount_cents": amount, "source": "cloud"}), qos=1)


def make_meter(root, broker):
    return linked_meter(root, MID, broker.host, broker.port, "mpw", 50000000)


def run_for(app, link, seconds, step_s=60):
    for _ in range(seconds // step_s):
        app.clock.advance(step_s * 1000)
        app.tick()
        link.tick(step_s)


@pytest.fixture
async def accounts(any_broker):
    await any_broker.add_user(MID, "mpw")
    await any_broker.add_user("cloud", "cpw", superuser=True)
    return any_broker


async def test_a_week_offline_then_history_in_order_and_the_recharge_once(accounts, tmp_path):
    cloud = await Cloud(accounts).start()
    app, link, client = make_meter(str(tmp_path), accounts)
    start_wh = app.energy.total_wh
    network = asyncio.Event()
    network.set()
    task = asyncio.create_task(client.run(network_up=network))
    try:
        await asyncio.wait_for(client.up.wait(), 10)
        await until(lambda: cloud.status and cloud.status[-1]["state"] == "online")
        # The network goes: no DISCONNECT, so the broker publishes the will.
        network.clear()
        client.reconnect("wifi lost")
        await until(lambda: cloud.status[-1]["state"] == "offline")
        assert cloud.status[-1]["reason"] == "connection_lost"
        cloud.recharge(1, 250000)  # paid while the meter was away: the broker holds it
        await until(lambda: cloud.client.pending() == 0)
        app.board.sensor.power_w = 500
        run_for(app, link, 7 * 24 * 3600, 300)  # a week of metering and billing, offline
        assert link.history.unacked() >= 167 and app.online is False
        balance_before = app.ledger.balance
        network.set()
        await until(lambda: cloud.acks)
        await until(lambda: link.history.unacked() == 0)
        hours = [h["hour_start"] for h in cloud.history]
        assert [h["seq"] for h in cloud.history] == list(range(1, len(hours) + 1))
        assert all(b - a == 3600 for a, b in zip(hours, hours[1:]))
        open_wh = link.history.unclosed(app.energy.total_wh, app.ledger.total_debited)[0]
        assert sum(h["wh"] for h in cloud.history) + open_wh == app.energy.total_wh - start_wh
        assert (cloud.acks[0]["status"], cloud.acks[0]["seq"]) == ("applied", 1)
        assert app.ledger.balance == balance_before + 250000
        cloud.recharge(1, 250000)  # the cloud re-sends: it changes nothing
        await until(lambda: len(cloud.acks) == 2)
        assert cloud.acks[1]["status"] == "duplicate"
        assert app.ledger.balance == balance_before + 250000
        assert app.store.load()["ledger"]["balance_cents"] == balance_before + 250000
    finally:
        await client.stop()
        task.cancel()
        await cloud.stop()


async def test_history_energy_adds_up_to_the_meter_total(accounts, tmp_path):
    cloud = await Cloud(accounts).start()
    app, link, client = make_meter(str(tmp_path), accounts)
    start_wh = app.energy.total_wh
    start_debited = app.ledger.total_debited
    app.board.sensor.power_w = 1234
    run_for(app, link, 10 * 3600 + 1800)
    task = asyncio.create_task(client.run())
    try:
        await until(lambda: len(cloud.history) == 10)
        open_wh, open_cents = link.history.unclosed(app.energy.total_wh, app.ledger.total_debited)
        assert sum(h["wh"] for h in cloud.history) + open_wh == app.energy.total_wh - start_wh
        assert (sum(h["cost_cents"] for h in cloud.history) + open_cents
                == app.ledger.total_debited - start_debited)
        assert all(h["wh"] in (1234, 1233, 1235) for h in cloud.history[1:])
    finally:
        await client.stop(will_payload=link.offline_payload("disconnect"))
        task.cancel()
        await cloud.stop()


class FakeWLAN:
    def __init__(self):
        self.connected = False
        self.requests = []

    def active(self, on=None):
        pass

    def connect(self, ssid, key):
        self.requests.append((ssid, key))
        self.connected = True

    def disconnect(self):
        self.connected = False

    def isconnected(self):
        return self.connected


class FakeNtp:
    def __init__(self, t):
        self.t = t

    def time(self):
        return self.t


async def test_start_link_brings_up_wifi_then_mqtt_then_sets_the_clock(accounts, tmp_path):
    from meter.link import start_link
    cloud = await Cloud(accounts).start()
    cfg, _ = meter_config.from_dict({
        "meter_id": MID, "initial_balance_cents": 1000,
        "wifi": {"ssid": "mita-net", "password": "secret"},
        "mqtt": {"host": accounts.host, "port": accounts.port, "user": "", "password": "mpw"}})

    class SettableClock(ManualClock):
        def set(self, t):
            self.t = t

    clock = SettableClock(1767225600)
    app = MeterApp(cfg, StateStore(str(tmp_path)), clock)
    app.attach(FakeBoard(clock, app.relay_at_boot()))
    wlan = FakeWLAN()
    link, client, tasks = start_link(app, wlan, FakeNtp(1767300000), str(tmp_path))
    try:
        await asyncio.wait_for(client.up.wait(), 10)
        assert wlan.requests == [("mita-net", "secret")]
        await until(lambda: cloud.status and cloud.status[-1]["state"] == "online")
        assert cloud.status[-1]["wifi_status"] == "connected"
        await until(lambda: clock.t == 1767300000)
        await until(lambda: app.snapshot.get("online") is True or app.online)
    finally:
        await client.stop()
        for task in tasks:
            task.cancel()
        await cloud.stop()


async def test_a_whole_meter_under_micropython_takes_a_recharge_once(accounts, tmp_path,
                                                                    firmware_lib):
    from test_mqtt_micropython import MpyPeer
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    env = dict(os.environ, MICROPYPATH=":".join(simulator.micropython_path(
        firmware_lib, os.path.join(ROOT, "tests", "firmware"), fakes=False)))
    state = tmp_path / "state"
    state.mkdir()
    cloud = await Cloud(accounts).start()
    # 192 KB: the whole app's bytecode sits in the unix port's heap (frozen on the device).
    proc = await asyncio.create_subprocess_exec(
        exe, "-X", "heapsize=192k", os.path.join(os.path.dirname(__file__), "mpy", "meter_peer.py"),
        accounts.host, str(accounts.port), MID, "mpw", str(state), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    peer = MpyPeer(proc)
    try:
        await peer.line("up")
        cloud.recharge(1, 70000)
        await until(lambda: cloud.acks)
        cloud.recharge(1, 70000)
        line = await peer.line("done")
        await peer.finish()
        assert [a["status"] for a in cloud.acks] == ["applied", "duplicate"]
        done = dict(kv.split("=") for kv in line.split()[1:])
        assert done["recharges"] == "2" and done["history_unacked"] == "0"
        assert done["malformed"] == "0"
        assert int(done["balance"]) > 100000  # the credit, less what the hours used
        assert [h["seq"] for h in cloud.history][:3] == [1, 2, 3]
        await until(lambda: cloud.status[-1]["state"] == "offline")
        assert cloud.status[-1]["reason"] == "disconnect"
    finally:
        if proc.returncode is None:
            proc.kill()
        await cloud.stop()
