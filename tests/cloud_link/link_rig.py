"""The rig for the cloud end of the meter link: the cloud app with its bridge on a real broker
(the in-process amqtt of cloud.link.broker, or mosquitto run from the files cloud.link.mosquitto
writes), and fake meters that speak docs/protocol.md over aiomqtt with the firmware's own
Recharger and Ledger. The fixtures are in conftest.py; tests import helpers from here (a name
of its own: several test folders have a conftest module)."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import aiomqtt

import simulator
from simulator.seam import ROOT

simulator.install()  # the firmware's Recharger and Ledger, on the fakes
for sub in ("cloud", "link"):  # the helpers of tests/cloud and tests/link
    path = os.path.join(ROOT, "tests", sub)
    if path not in sys.path:
        sys.path.insert(0, path)

from brokers import free_port, probe_connack  # noqa: E402  (tests/link's helpers)
from cloud_harness import Harness, c2b_body, make_config, SECRET  # noqa: E402
from meter.ledger import Ledger  # noqa: E402
from meter.recharge import Recharger  # noqa: E402

from cloud.app import create_app  # noqa: E402
from cloud.keys import LINK  # noqa: E402
from cloud.link import mosquitto as mosq  # noqa: E402
from cloud.link import payloads as lp  # noqa: E402
from cloud.link.accounts import BRIDGE_USERNAME, meter_broker_password  # noqa: E402
from cloud.link.settings import LinkSettings  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BRIDGE_PASSWORD = "bridge-test-password-0123"


async def eventually(check, timeout_s=5.0):
    """Poll a sync or async condition in few-ms steps; its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.005)


class FakeMeter:
    """A meter per docs/protocol.md: persistent session, retained last will, the four
    subscriptions, recharges applied by the firmware's Recharger before the ack."""

    def __init__(self, host, port, meter_no, password, balance_cents=0, device_key=""):
        self.host, self.port = host, port
        self.meter_no = meter_no
        self.password = password
        self.device_key = device_key
        self.key = lp.command_key(device_key, meter_no)  # checks what the cloud signs
        self.refused = []        # (kind, payload) of commands not signed for this meter
        self.recharger = Recharger(Ledger(balance_cents))
        self.messages = []       # (kind, msg) received, in order
        self.acks = []           # recharge acks sent
        self.history_acks = []   # history/ack bodies received
        self.refuse = {}         # seq -> reason: always reject it (a message the meter refuses)
        self.refuse_once = {}    # seq -> reason: reject the next copy only (storage_error)
        self.lose_acks = set()   # seqs whose first ack is lost on the way
        self.client = None
        self._reader = None

    @property
    def balance(self):
        return self.recharger.ledger.balance

    def topic(self, kind):
        return "meters/%s/%s" % (self.meter_no, kind)

    def received(self, kind):
        return [m for k, m in self.messages if k == kind]

    async def connect(self, tariff_version=None):
        will = aiomqtt.Will(self.topic("status"), json.dumps(
            {"v": 1, "state": "offline", "reason": "connection_lost"}), qos=1, retain=True)
        self.client = aiomqtt.Client(self.host, self.port, username=self.meter_no,
                                     password=self.password, identifier=self.meter_no,
                                     clean_session=False, will=will, keepalive=60)
        await self.client.__aenter__()
        for kind in ("recharge", "tariff", "sync", "history/ack"):
            await self.client.subscribe(self.topic(kind), qos=1)
        self._reader = asyncio.create_task(self._read())
        status = {"state": "online", "load_connected": self.balance > 0,
                  "wifi_status": "connected", "mqtt_status": "connected", "firmware": "0.1.0"}
        if tariff_version is not None:
            status["tariff_version"] = tariff_version
        await self.send("status", status, retain=True)

    async def send(self, kind, body, qos=1, retain=False, raw=None):
        payload = raw if raw is not None else json.dumps(dict({"v": 1}, **body))
        await self.client.publish(self.topic(kind), payload, qos=qos, retain=retain)

    async def _read(self):
        try:
            async for message in self.client.messages:
                kind = str(message.topic).split("/", 2)[2]
                if kind not in ("recharge", "tariff", "sync", "history/ack"):
                    continue  # not a command (a broker echoing a retained report): ignored
                body = lp.opened(self.key, message.payload)
                msg = json.loads(body) if body is not None else None
                if msg is None or (msg.pop("cmd", None), msg.pop("meter", None)) != (
                        kind, self.meter_no):
                    self.refused.append((kind, message.payload))  # as the firmware does
                    continue
                self.messages.append((kind, msg))
                if kind == "recharge":
                    await self._on_recharge(msg)
                elif kind == "sync":
                    self.recharger.advance_floor("cloud", msg["recharge_floor"])
                elif kind == "history/ack":
                    self.history_acks.append(msg)
        except aiomqtt.MqttError:
            pass

    async def _on_recharge(self, msg):
        seq = msg["seq"]
        if seq in self.refuse or seq in self.refuse_once:
            status, reason = "rejected", self.refuse.get(seq) or self.refuse_once.pop(seq)
        else:
            status, reason = self.recharger.apply(msg, 0)
        ack = {"seq": msg["seq"], "id": msg["id"], "status": status, "reason": reason,
               "balance_cents": self.balance, "t": 1764120001}
        self.acks.append(ack)
        if seq in self.lose_acks:
            self.lose_acks.discard(seq)
            return
        await self.send("recharge/ack", ack)

    async def disconnect(self):
        """A clean goodbye: offline status first, as the protocol says."""
        await self.send("status", {"state": "offline", "reason": "disconnect"}, retain=True)
        await self._close()

    async def drop(self):
        """The power dies: the socket closes with no DISCONNECT, so the broker sends the will."""
        self.client._client.socket().shutdown(socket.SHUT_RDWR)
        await self._close()
        gone = self.client._disconnected
        if gone.done() and not gone.cancelled():
            gone.exception()  # seen: it is the point of this test step

    async def _close(self):
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        try:
            await self.client.__aexit__(None, None, None)
        except aiomqtt.MqttError:
            pass


class MosquittoProcess:
    """mosquitto run from the files cloud.link.mosquitto writes (config, ACL, password file)."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="mita-cloud-mosquitto-")
        os.chmod(self.folder, 0o755)  # started as root it drops to its own user
        self.port = free_port()
        self.paths = mosq.write_config(self.folder, self.port, persistence=False)
        with open(self.paths["mosquitto.conf"], "a", encoding="utf-8") as f:
            f.write("log_type all\n")  # its ACL refusals are logged at debug level only
        self.pid_file = os.path.join(self.folder, "pid")  # ours: mosquitto's own would need root
        self.proc = None

    async def start(self):
        self.log = open(os.path.join(self.folder, "log"), "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.paths["mosquitto.conf"]],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        with open(self.pid_file, "w") as f:
            f.write(str(self.proc.pid))
        for _ in range(500):
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: " + self.log_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                await asyncio.sleep(0.01)
        raise RuntimeError("mosquitto did not listen")

    def log_text(self):
        with open(os.path.join(self.folder, "log"), "rb") as f:
            return f.read().decode(errors="replace")

    async def stop_process(self):
        if self.proc is not None:
            self.proc.terminate()
            await asyncio.to_thread(self.proc.wait, 5)
            self.proc = None
            self.log.close()

    async def stop(self):
        await self.stop_process()
        shutil.rmtree(self.folder, ignore_errors=True)


class LinkRig:
    """The cloud app (SQLite, Daraja stand-in) with its bridge on a real broker."""

    def __init__(self, harness, kind, broker_port, mosquitto=None):
        self.h = harness
        self.kind = kind
        self.port = broker_port
        self.mosquitto = mosquitto
        self.store = harness.store
        self.bridge = harness.app[LINK].bridge

    async def meter(self, meter_no="MTR0001", balance_cents=0, connect=True):
        """Register a customer's meter (through the API) and, by default, connect it."""
        user_id, _ = await self.h.create_customer()
        resp = await self.h.client.post("/api/meters", json={"meter_no": meter_no,
                                                             "user_id": user_id},
                                        headers=self.h.op())
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        meter_no, password = body["meter_no"], body["mqtt_password"]
        assert body["mqtt_username"] == meter_no
        assert password == meter_broker_password(meter_no, body["device_key"])
        if self.mosquitto is not None:  # registration rewrote its password file and SIGHUPed it
            async def accepted():
                return await connack(self.port, meter_no, password) == 0
            assert await eventually(accepted, 3.0)
        fake = FakeMeter("127.0.0.1", self.port, meter_no, password, balance_cents,
                         body["device_key"])
        if connect:
            await fake.connect()
            assert await eventually(lambda: self._online(meter_no))
        return fake

    async def _online(self, meter_no):
        """The bridge took the online status and finished the delivery pass it started."""
        meter = await self.store.get_meter(meter_no)
        channel = self.bridge.known(meter_no)
        return (meter["status"].get("state") == "online" and channel is not None
                and channel.online_at > 0 and channel.delivering is None)

    def _accounts(self):
        return self.h.app[LINK].broker.accounts

    async def refused_publishes(self):
        """Publishes the broker refused by its ACL: the in-process broker's counter, or the
        lines mosquitto logs for each (after a moment for its log to be written)."""
        if self.mosquitto is None:
            return getattr(self._accounts(), "refused_topics", 0)
        await asyncio.sleep(0.1)
        return self.mosquitto.log_text().count("Denied PUBLISH")

    async def refused_client_ids(self):
        """CONNECTs the in-process broker refused for another login's client id, as an
        operator reads them in /api/payments/counters (mosquitto cannot be asked: it gives
        every client its login as client id, so there are none)."""
        if self.mosquitto is not None:
            return 0
        resp = await self.h.client.get("/api/payments/counters", headers=self.h.op())
        assert resp.status == 200
        counters = await resp.json()
        assert counters["broker_refused_client_ids"] == self._accounts().refused_client_ids
        return counters["broker_refused_client_ids"]

    async def pay(self, meter_no, trans_id, amount="100.00"):
        """A C2B payment confirmed by Daraja: recorded, and its recharge handed to the bridge."""
        resp = await self.h.client.post("/daraja/c2b/confirmation/%s" % SECRET,
                                        json=c2b_body(trans_id, meter_no, amount))
        assert resp.status == 200, await resp.text()

    async def recharge(self, meter_no, seq):
        for r in await self.store.list_recharges(meter_no):
            if r["seq"] == seq:
                return r
        return None


async def connack(port, user, password, client_id=None):
    """A clean-session CONNECT (client id: the user name, as the brokers require, unless
    given): the CONNACK return code (0 = accepted), or None if the broker closed without one.
    On a thread: the in-process broker shares this loop."""
    return await asyncio.to_thread(_connack, port, user, password, client_id or user)


def _connack(port, user, password, client_id):
    try:
        return probe_connack("127.0.0.1", port, user, password, client_id=client_id)
    except OSError:
        return None
