"""Benchmark: from an accepted M-Pesa callback to the meter's relay closing, over mosquitto;
then how many meters (telemetry every 10 s) one cloud process serves before the p99 of that
command latency passes 1 s.

    .venv/bin/python bench/link_latency.py [--payments 250] [--fleet 1000,2000,5000,10000]
    .venv/bin/python bench/link_latency.py --sites 3 --workers 4 --fleet 10000,30000,50000 --keep-going

The cloud runs as `python -m cloud serve` in its own process (SQLite store, the Daraja
stand-in, MITA_MQTT_URL pointing at a mosquitto this script starts with the files
cloud.link.mosquitto writes). The meters that receive payments are the firmware itself under
CPython: MeterApp on the test suite's fake board, with the firmware's own link and MQTT client;
latency ends when its relay driver closes (`--fake-probes`: the small client below instead).
The load fleet is a small asyncio MQTT 3.1.1 client per meter speaking docs/protocol.md
(thousands of whole firmware meters do not fit beside the cloud on a laptop), in worker
processes. A payment is a C2B confirmation (one Daraja callback). Prints figures only; never
passes or fails on time.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script: the repository's packages, even when not installed
    sys.path.insert(0, ROOT)
import simulator  # noqa: E402

simulator.install()  # the firmware under CPython, on the fakes
import aiohttp  # noqa: E402

from cloud.link import mosquitto as mosq  # noqa: E402
from cloud.link.accounts import (BRIDGE_USERNAME, METER_PUBLISHES, METER_SUBSCRIBES,  # noqa: E402
                                 meter_broker_password)

SECRET = "bench-callback-secret-000"
OPERATOR = "op-bench-key-0123456789"
BRIDGE_PASSWORD = "bench-bridge-password"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- a minimal MQTT 3.1.1 meter ---------------------------------------------------------------

def _utf8(text):
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _packet(kind, body):
    n, length = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            return bytes([kind]) + bytes(length) + body


class MiniMeter:
    """Just enough MQTT for a meter: CONNECT with a will, SUBSCRIBE, PUBLISH QoS 0/1, PUBACK."""

    def __init__(self, port, meter_no, password, device_key="", on_close=None):
        from meter.command_auth import command_key, opened
        from meter.ledger import Ledger
        from meter.recharge import Recharger
        self.port, self.meter_no, self.password = port, meter_no, password
        self.key = command_key(device_key, meter_no)  # checks the cloud's signature, as a meter
        self._opened = opened
        self.recharger = Recharger(Ledger(0))
        self.relay_closed = False
        self.on_close = on_close  # called with (receipt, monotonic time) when the relay closes
        self.mid = 0
        self.writer = None

    def topic(self, kind):
        return "meters/%s/%s" % (self.meter_no, kind)

    async def connect(self):
        reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        will = json.dumps({"v": 1, "state": "offline", "reason": "connection_lost"})
        body = (_utf8("MQTT") + bytes([4, 0xC0 | 0x20 | 0x08 | 0x04]) + (60).to_bytes(2, "big")
                + _utf8(self.meter_no) + _utf8(self.topic("status")) + _utf8(will)
                + _utf8(self.meter_no) + _utf8(self.password))
        self.writer.write(_packet(0x10, body))
        header = await reader.readexactly(4)
        if header[3] != 0:
            raise ConnectionError("CONNACK %d for %s" % (header[3], self.meter_no))
        subs = b"".join(_utf8(self.topic(k)) + b"\x01" for k in ("recharge", "sync"))
        self.writer.write(_packet(0x82, (1).to_bytes(2, "big") + subs))
        self.publish("status", {"state": "online", "load_connected": False}, qos=1, retain=True)
        return asyncio.create_task(self._read(reader))

    def publish(self, kind, body, qos=0, retain=False):
        payload = json.dumps(dict({"v": 1}, **body)).encode()
        head = 0x30 | (qos << 1) | (1 if retain else 0)
        mid = b""
        if qos:
            self.mid = self.mid % 65535 + 1
            mid = self.mid.to_bytes(2, "big")
        self.writer.write(_packet(head, _utf8(self.topic(kind)) + mid + payload))

    async def _read(self, reader):
        try:
            while True:
                first = (await reader.readexactly(1))[0]
                length, shift = 0, 0
                while True:
                    byte = (await reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                body = await reader.readexactly(length)
                if first >> 4 == 3:
                    self._on_publish(first, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    def _on_publish(self, first, body):
        n = int.from_bytes(body[:2], "big")
        topic = body[2:2 + n].decode()
        rest = body[2 + n:]
        if (first >> 1) & 3:
            self.writer.write(_packet(0x40, rest[:2]))  # PUBACK (after the "persisted" apply)
            rest = rest[2:]
        signed = self._opened(self.key, rest)
        if signed is None:
            return  # not signed for this meter: refused, as the firmware does
        msg = json.loads(signed)
        if topic.endswith("/sync"):
            self.recharger.advance_floor("cloud", msg["recharge_floor"])
            return
        status, reason = self.recharger.apply(msg, 0)
        balance = self.recharger.ledger.balance
        self.publish("recharge/ack", {"seq": msg["seq"], "id": msg["id"], "status": status,
                                      "reason": reason, "balance_cents": balance}, qos=1)
        if balance > 0 and not self.relay_closed:
            self.relay_closed = True
            if self.on_close is not None:
                self.on_close(msg["id"], time.monotonic())

    def consume_all(self):
        """The load eats the credit and the relay opens again (ready for the next payment)."""
        ledger = self.recharger.ledger
        if ledger.balance > 0:
            ledger.debit(ledger.balance)
        self.relay_closed = False

    def telemetry(self):
        self.publish("telemetry", {"balance_cents": self.recharger.ledger.balance,
                                   "power_w": random.randint(0, 3000),
                                   "alerts": {"low_balance": True, "critical_balance": True}})


class FirmwareMeter:
    """The firmware's MeterApp + MeterLink + MQTTClient on the fake board of tests/firmware."""

    def __init__(self, port, meter_no, password, device_key, folder):
        sys.path.insert(0, os.path.join(ROOT, "tests", "firmware"))
        from appfakes import FakeBoard, ManualClock
        from meter import config as meter_config
        from meter.app import MeterApp
        from meter.link import make_link
        from meter.storage import StateStore
        cfg, _ = meter_config.from_dict({
            "meter_id": meter_no, "initial_balance_cents": 0,
            "tariff": {"version": 1, "bands": [{"rate": 2500}], "vat_bp": 0},
            "mqtt": {"host": "127.0.0.1", "port": port, "user": meter_no, "password": password},
            "key": device_key, "policy": {"min_switch_s": 0}, "persist_interval_s": 3600})
        root = os.path.join(folder, meter_no)
        os.makedirs(root)
        self.meter_no = meter_no
        self.app = app = MeterApp(cfg, StateStore(root), ManualClock(1767225600))
        app.attach(FakeBoard(app.clock, app.relay_at_boot()))
        app.tick()
        self.link, self.client = make_link(app, backoff_min_ms=50, backoff_max_ms=500)
        self.client.on_message = self._on_message
        self.on_close = None

    def _on_message(self, topic, payload, retained=False):
        relay = self.app.board.relay
        before = self.app.ledger.balance
        self.link.on_message(topic, payload, retained)  # applies, persists, acks
        # the payment is on the relay once its credit is in and the relay closed: a credit
        # landing while an earlier one still holds the relay closed counts when it lands
        if self.app.ledger.balance > before and relay.is_closed() and self.on_close:
            self.on_close(json.loads(payload.split(b"\n")[0]).get("id"), time.monotonic())

    async def connect(self):
        task = asyncio.create_task(self.client.run())
        await asyncio.wait_for(self.client.up.wait(), 10)
        return task

    def consume_all(self):
        """The load eats the credit; the relay policy opens the relay at the next tick."""
        ledger = self.app.ledger
        if ledger.balance > 0:
            ledger.debit(ledger.balance)
        self.app.clock.advance(1000)
        self.app.tick()


# -- the fleet: meters that only connect and send telemetry (worker processes) ----------------

async def connect_retrying(meter, attempts=8):
    """Connects as a meter does, again after a refusal or a reset (a broker taking thousands
    of logins at once resets some); how many retries it took."""
    delay = 0.2
    for attempt in range(attempts):
        try:
            await meter.connect()
            return attempt
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def fleet_worker(port, accounts, interval_s, ready):
    async def main():
        meters = []
        retries = 0
        for i, (meter_no, password, device_key) in enumerate(accounts):
            meter = MiniMeter(port, meter_no, password, device_key)
            retries += await connect_retrying(meter)
            meters.append(meter)
            if i % 200 == 199:
                await asyncio.sleep(0.2)  # a ramp, not a thundering herd
        if retries:
            print("fleet worker: %d connection attempts refused or reset, retried" % retries,
                  file=sys.stderr)
        ready.set()
        phase = {m.meter_no: random.uniform(0, interval_s) for m in meters}
        start = time.monotonic()
        ticks = {m.meter_no: 0 for m in meters}
        while True:
            now = time.monotonic() - start
            for m in meters:
                if now >= phase[m.meter_no] + ticks[m.meter_no] * interval_s:
                    ticks[m.meter_no] += 1
                    m.telemetry()
            await asyncio.sleep(0.05)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(main())


# -- the rig ----------------------------------------------------------------------------------

async def prepare_store(path, count):
    """A user and `count` meters straight into the SQLite file; (meter_no, broker password,
    device key) each."""
    from cloud.store.sqlite import SqliteStore
    store = await SqliteStore.open(path)
    try:
        await store.create_user({"user_id": "bench", "name": "Bench"})
        accounts = []
        for i in range(count):
            meter_no, key = "BENCH%06d" % i, "dk_bench_%06d" % i
            await store.create_meter(meter_no, "bench", key)
            accounts.append((meter_no, meter_broker_password(meter_no, key), key))
        return accounts
    finally:
        await store.close()


class Rig:
    """mosquitto and the cloud; with `sites`, that many site brokers as well, each a mosquitto
    bridged to the central one (docs/operations.md: a broker per site), where the meters log in:
    one mosquitto holds at most one connection per file descriptor (20,000 here)."""

    def __init__(self, folder, sites=0, cloud_env=None):
        self.folder = folder
        self.cloud_env = cloud_env or {}  # more environment for the cloud (soak diagnostics)
        self.mqtt_port, self.http_port = free_port(), free_port()
        self.paths = mosq.write_config(os.path.join(folder, "mosquitto"), self.mqtt_port,
                                       persistence=False)
        os.chmod(os.path.join(folder, "mosquitto"), 0o755)
        os.chmod(folder, 0o755)
        self.pid_file = os.path.join(folder, "mosquitto.pid")
        self.sites = [SiteBroker(folder, i + 1, self.mqtt_port, self.paths["passwords"])
                      for i in range(sites)]
        if self.sites:
            # The central broker knows the cloud's bridge and the site brokers; the meters'
            # logins live in the sites' file (the one the cloud keeps, below).
            central = os.path.join(folder, "mosquitto", "central-passwords")
            mosq.write_password_file(central, dict(
                {BRIDGE_USERNAME: mosq.hash_password(BRIDGE_PASSWORD)},
                **{site.name: mosq.hash_password(site.password) for site in self.sites}))
            with open(self.paths["acl"], "a", encoding="utf-8") as f:
                for site in self.sites:
                    f.write("\nuser %s\ntopic readwrite meters/#\n" % site.name)
            with open(self.paths["mosquitto.conf"], "w", encoding="utf-8") as f:
                f.write(mosq.config_text(self.mqtt_port, central, self.paths["acl"]))
        self.meter_ports = [site.port for site in self.sites] or [self.mqtt_port]
        self.procs = []

    def start(self):
        broker = subprocess.Popen([MOSQUITTO, "-c", self.paths["mosquitto.conf"]],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(self.pid_file, "w") as f:
            f.write(str(broker.pid))
        sites = [site.start() for site in self.sites]
        env = dict(os.environ, PORT=str(self.http_port), MITA_OPERATOR_KEY=OPERATOR,
                   MITA_SQLITE_PATH=os.path.join(self.folder, "mita.sqlite3"),
                   MITA_CALLBACK_SECRET=SECRET,
                   MITA_MQTT_URL="mqtt://%s:%s@127.0.0.1:%d" % (BRIDGE_USERNAME, BRIDGE_PASSWORD,
                                                               self.mqtt_port),
                   MITA_MOSQUITTO_PASSWORD_FILE=self.paths["passwords"],
                   MITA_MOSQUITTO_PID_FILE=self.pid_file, PYTHONPATH=ROOT, **self.cloud_env)
        cloud = subprocess.Popen([sys.executable, "-m", "cloud", "--env-file", "", "serve"],
                                 env=env, cwd=self.folder, stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(self.folder, "cloud.log"), "wb"))
        self.procs = [cloud] + sites + [broker]

    async def wait_ready(self, session, accounts):
        for _ in range(3000):
            try:
                async with session.get("http://127.0.0.1:%d/health" % self.http_port) as r:
                    if r.status == 200 and await self._accepts(*accounts[0]):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        try:
            with open(os.path.join(self.folder, "cloud.log"), errors="replace") as f:
                tail = "".join(f.readlines()[-15:])
        except OSError:
            tail = "(no log)"
        raise RuntimeError("the cloud did not come up; its log ends:\n" + tail)

    async def _accepts(self, meter_no, password, device_key):
        meter = MiniMeter(self.meter_ports[0], meter_no + "-probe", password, device_key)
        try:
            meter.meter_no = meter_no
            task = await meter.connect()
            task.cancel()
            meter.writer.close()
            return True
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            return False

    def stop(self):
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:  # a loaded machine: do not lose the figures
                proc.kill()
                proc.wait(10)


class SiteBroker:
    """A site's mosquitto: the meters' logins (the password file the cloud keeps) and the
    protocol's ACL, bridged to the central broker with its own login: the meters' reports go
    up, the commands for meters come down (docs/protocol.md's topics, nothing else)."""

    def __init__(self, folder, number, central_port, password_file):
        self.name = "site-%d" % number
        self.port = free_port()
        self.password = "bench-%s-password" % self.name
        base = os.path.join(folder, "mosquitto", self.name)
        os.makedirs(base)
        acl = os.path.join(base, "acl")
        with open(acl, "w", encoding="utf-8") as f:
            f.write(mosq.acl_text())
        lines = [mosq.config_text(self.port, password_file, acl),
                 "connection %s" % self.name, "address 127.0.0.1:%d" % central_port,
                 "remote_clientid %s" % self.name, "remote_username %s" % self.name,
                 "remote_password %s" % self.password, "bridge_protocol_version mqttv311",
                 "try_private true", "notifications false", "cleansession false"]
        lines += ["topic meters/+/%s out 1" % kind for kind in METER_PUBLISHES]
        lines += ["topic meters/+/%s in 1" % kind for kind in METER_SUBSCRIBES]
        self.conf = os.path.join(base, "mosquitto.conf")
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        return subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)


async def pay(session, port, meter_no, receipt):
    body = {"TransactionType": "Pay Bill", "TransID": receipt, "TransTime": "20261126063845",
            "TransAmount": "10.00", "BusinessShortCode": "174379", "BillRefNumber": meter_no,
            "MSISDN": "254712345678", "FirstName": "Bench"}
    url = "http://127.0.0.1:%d/daraja/c2b/confirmation/%s" % (port, SECRET)
    async with session.post(url, json=body) as resp:
        if resp.status != 200:
            raise RuntimeError("callback refused: %d %s" % (resp.status, await resp.text()))


def _land(closed, receipt, t):
    future = closed.get(receipt)
    if future is not None and not future.done():  # a re-sent copy lands once
        future.set_result(t)


LATE_S = 30    # a payment not on the relay by then is reported as it happens
NEVER_S = 300  # and given up on after this (the cloud re-sends an unanswered recharge)


async def measure(rig, session, probes, count, rate_hz, tag):
    """`count` payments to the probe meters, `rate_hz` a second (0: one after another);
    latency from sending the callback to the relay closing, in seconds."""
    closed = {}
    for meter in probes:
        meter.on_close = lambda receipt, t: _land(closed, receipt, t)
    latencies = []

    async def one(i):
        meter = probes[i % len(probes)]
        receipt = "%s%07d" % (tag, i)
        closed[receipt] = asyncio.get_running_loop().create_future()
        t0 = time.monotonic()
        await pay(session, rig.http_port, meter.meter_no, receipt)
        try:
            # shielded: a payment late past the wait is still timed when it lands
            t1 = await asyncio.wait_for(asyncio.shield(closed[receipt]), LATE_S)
        except asyncio.TimeoutError:
            print("      %s: the relay had not closed %d s after the callback; waiting"
                  % (receipt, LATE_S), flush=True)
            try:
                t1 = await asyncio.wait_for(closed[receipt], NEVER_S - LATE_S)
            except asyncio.TimeoutError:
                print("      %s: NEVER closed within %d s (counted as %d s)"
                      % (receipt, NEVER_S, NEVER_S), flush=True)
                t1 = t0 + NEVER_S
        latencies.append(t1 - t0)
        meter.consume_all()
    if rate_hz:
        tasks = []
        for i in range(count):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(1 / rate_hz)
        await asyncio.gather(*tasks)
    else:
        for i in range(count):
            await one(i)
    return latencies


def report(label, values):
    print("%-34s n=%4d  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms" % (
        label, len(values), 1000 * percentile(values, 50), 1000 * percentile(values, 99),
        1000 * max(values)), flush=True)


async def run(args):
    folder = tempfile.mkdtemp(prefix="mita-bench-link-")
    fleet_sizes = [int(n) for n in args.fleet.split(",") if n]
    probes_n = max(1, args.probes)
    accounts = await prepare_store(os.path.join(folder, "mita.sqlite3"),
                                   probes_n + (max(fleet_sizes) if fleet_sizes else 0))
    rig = Rig(folder, args.sites)
    if rig.sites:  # the sites read the meters' logins at start: the file is whole before
        await write_meter_logins(os.path.join(folder, "mita.sqlite3"), rig.paths["passwords"])
    rig.start()
    workers = []
    try:
        async with aiohttp.ClientSession() as session:
            await rig.wait_ready(session, accounts)
            if args.fake_probes:
                probes = [MiniMeter(rig.meter_ports[0], *a) for a in accounts[:probes_n]]
            else:
                probes = [FirmwareMeter(rig.meter_ports[0], *a, folder)
                          for a in accounts[:probes_n]]
            if rig.sites:
                print("site brokers: %d, bridged to the central one; the probes on %s"
                      % (len(rig.sites), rig.sites[0].name))
            print("probe meters: %s" % ("fake clients" if args.fake_probes
                                        else "the firmware (MeterApp, link, MQTT client)"))
            for meter in probes:
                await meter.connect()
            await asyncio.sleep(1.0)  # the bridge's delivery pass for each new status
            lat = await measure(rig, session, probes, args.payments, 0, "QKL")
            report("payments one at a time (idle)", lat)
            lat = await measure(rig, session, probes, args.payments, args.rate, "QKR")
            report("payments at %g/s (idle)" % args.rate, lat)
            fleet = accounts[probes_n:]
            have = 0
            for size in fleet_sizes:
                workers += start_fleet(rig.meter_ports, fleet[have:size], args.workers,
                                       args.telemetry_s)
                have = size
                await asyncio.sleep(args.telemetry_s + 2)  # every fleet meter has reported
                lat = await measure(rig, session, probes, args.samples, args.rate, "Q%d" % size)
                report("%5d meters, telemetry/%gs, %g pay/s" % (size, args.telemetry_s,
                                                                args.rate), lat)
                fresh, median_age, max_age = stored_ages(
                    os.path.join(folder, "mita.sqlite3"), 2 * args.telemetry_s, size + probes_n)
                print("      meters whose stored telemetry is under %gs old: %d of %d; "
                      "store lag (age of each meter's stored reading): median %.1f s, "
                      "max %.1f s" % (2 * args.telemetry_s, fresh, size + probes_n,
                                      median_age, max_age), flush=True)
                if percentile(lat, 99) > 1.0:
                    print("p99 passed 1 s at %d meters" % size)
                    if not args.keep_going:
                        break
    finally:
        for w in workers:
            w.terminate()
        rig.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def write_meter_logins(path, password_file):
    """The meters' broker logins from the store, as the cloud itself writes them at start."""
    from cloud.store.sqlite import SqliteStore
    store = await SqliteStore.open(path)
    try:
        await mosq.sync_password_file(store, password_file, {})
    finally:
        await store.close()


def stored_ages(path, age_s, running):
    """(how many meters' records the bridge updated in the last age_s, the median and the
    largest age in s of the `running` meters' stored readings: the newest that many, the
    others not started yet), from a read-only peek. With telemetry every T s a store that
    keeps up holds readings T/2 old at the median, T at most."""
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        updates = sorted(row[0] or 0 for row in db.execute("SELECT last_update FROM meters"))
    finally:
        db.close()
    now_ms = time.time() * 1000
    ages = [(now_ms - at) / 1000 for at in reversed(updates)][:running]
    fresh = sum(1 for age in ages if age <= age_s)
    return fresh, ages[len(ages) // 2], ages[-1]


def start_fleet(ports, accounts, workers, interval_s):
    """`accounts` spread evenly over the broker ports (each broker's share of the fleet
    equal: a broker holds one descriptor per meter), each port's share over its workers
    (at least `workers` in all, as many for every port)."""
    procs = []
    per_port = -(-workers // len(ports))
    chunks = []
    for p, port in enumerate(ports):
        share = accounts[p::len(ports)]
        chunks += [(port, share[w::per_port]) for w in range(per_port)]
    for port, chunk in chunks:
        if not chunk:
            continue
        ready = multiprocessing.Event()
        proc = multiprocessing.Process(target=fleet_worker, args=(
            port, chunk, interval_s, ready), daemon=True)
        proc.start()
        procs.append((proc, ready))
    for proc, ready in procs:
        ready.wait(300)
    return [p for p, _ in procs]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=250)
    parser.add_argument("--probes", type=int, default=10, help="meters receiving payments")
    parser.add_argument("--fake-probes", action="store_true",
                        help="payments go to the small fake client, not the firmware")
    parser.add_argument("--rate", type=float, default=5.0, help="payments a second under load")
    parser.add_argument("--samples", type=int, default=200, help="payments per fleet size")
    parser.add_argument("--fleet", default="1000,2000,5000,10000",
                        help="fleet sizes to try, comma-separated ('' to skip)")
    parser.add_argument("--telemetry-s", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="fleet processes")
    parser.add_argument("--keep-going", action="store_true",
                        help="try every fleet size, even after the p99 passed 1 s")
    parser.add_argument("--sites", type=int, default=0,
                        help="site brokers bridged to the central one (the meters log in there;"
                             " above ~19,000 meters one mosquitto runs out of descriptors)")
    args = parser.parse_args()
    if not os.path.exists(MOSQUITTO):
        sys.exit("mosquitto is not installed (%s)" % MOSQUITTO)
    print("bench/link_latency.py: %d cpus, python %s" % (os.cpu_count(), sys.version.split()[0]))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
