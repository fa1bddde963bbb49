"""Three cloud processes (`python -m cloud serve`) on one mosquitto and one store (a SQLite
file on this machine, or Firebase: the local RTDB stand-in), each with its own bridge login in the share group `mita` (docs/operations.md "Several instances on
one broker"): each meter message is handled by one instance, a payment and its duplicate sent
to different instances credit the meter once, an instance killed in the middle of the run
loses no payment, no acknowledgement and no telemetry (what the broker queued for it is
handled when it is back), and a lost callback is settled once with all three settling."""

import asyncio
import os
import shutil
import sys
import tempfile
import uuid

import aiohttp
import pytest

from link_rig import MOSQUITTO, ROOT, FakeMeter, connack, eventually

sys.path.insert(0, os.path.join(ROOT, "tools"))
import mita_procs  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(MOSQUITTO),
                                reason="mosquitto is not installed; CI installs it")

INSTANCES = 3
METERS = 4
AMOUNT_CENTS = 1000


class Cluster:
    """mosquitto, three cloud instances sharing one store, fake meters on the broker.
    store_env: the settings that name the shared store; store: the test's own view of it."""

    def __init__(self, folder, store_env, store):
        self.folder = folder
        self.store = store
        self.clouds = []
        self.mosquitto = mita_procs.MosquittoProcess(folder, instances=INSTANCES).start()
        self.daraja = mita_procs.DarajaProcess(folder).start()  # one M-Pesa for all three
        for n in range(INSTANCES):
            own = os.path.join(folder, "instance-%d" % n)
            os.makedirs(own)
            env = dict(self.mosquitto.cloud_env(n), MITA_MQTT_RESEND_S="1",
                       MITA_SETTLE_AFTER_S="2", MITA_SETTLE_EVERY_S="0.5", **store_env)
            self.clouds.append(mita_procs.CloudProcess(own, env=env, daraja=self.daraja).start())
        self.meters = []
        self.sent_telemetry = 0

    async def add_meters(self, count):
        for n in range(count):
            reply = await asyncio.to_thread(self.clouds[n % INSTANCES].customer_with_meter,
                                            "MITA%04d" % (n + 1))
            meter_no, password = reply["meter_no"], reply["mqtt_password"]

            async def accepted(meter_no=meter_no, password=password):
                return await connack(self.mosquitto.port, meter_no, password) == 0
            assert await eventually(accepted, 10.0), "mosquitto never took " + meter_no
            meter = FakeMeter("127.0.0.1", self.mosquitto.port, meter_no, password,
                              device_key=reply["device_key"])
            await meter.connect()
            self.meters.append(meter)

    async def telemetry(self, rounds):
        for r in range(rounds):
            for meter in self.meters:
                await meter.send("telemetry", {"balance_cents": meter.balance,
                                               "t": 1764120000 + r})
                self.sent_telemetry += 1

    async def counters(self, instance):
        cloud = self.clouds[instance]
        _, reply = await asyncio.to_thread(cloud.api, "GET", "/api/payments/counters",
                                           None, None, 200)
        return reply

    def handled_telemetry(self, counters):
        """Each telemetry message an instance took is either written or replaced by a newer
        one of the same meter before the write."""
        return counters["link_telemetry_written"] + counters["link_telemetry_coalesced"]

    async def recharges(self):
        """(meter, id, status) of every recharge in the shared store."""
        return [(meter.meter_no, r["id"], r["status"]) for meter in self.meters
                for r in await self.store.list_recharges(meter.meter_no)]

    async def receipts(self):
        """The receipt of every transaction in the shared store."""
        return [t["mpesa_receipt"] for meter in self.meters
                for t in await self.store.list_transactions_for_meter(meter.meter_no, 1000)]

    def stop(self):
        for cloud in self.clouds:
            cloud.stop()
        self.daraja.stop()
        self.mosquitto.stop()


async def pay(session, cloud, meter_no, receipt):
    """A C2B confirmation as Daraja sends it; False when the instance did not take it."""
    body = {"TransactionType": "Pay Bill", "TransID": receipt, "TransTime": "20261126063845",
            "TransAmount": "%d.00" % (AMOUNT_CENTS // 100), "BusinessShortCode": "174379",
            "BillRefNumber": meter_no, "MSISDN": "254712345678", "FirstName": "Test"}
    url = "%s/daraja/c2b/confirmation/%s" % (cloud.url, cloud.secret)
    try:
        async with session.post(url, json=body) as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def pay_round_robin(cluster, session, receipts, alive):
    """Each payment to one live instance and its duplicate to the next; a callback an
    instance did not answer goes again to another, as Daraja retries. {receipt: meter_no}"""
    paid = {}
    for i, receipt in enumerate(receipts):
        meter = cluster.meters[i % len(cluster.meters)]
        paid[receipt] = meter.meter_no
        for offset in (0, 1):
            for attempt in range(len(alive)):
                cloud = cluster.clouds[alive[(i + offset + attempt) % len(alive)]]
                if await pay(session, cloud, meter.meter_no, receipt):
                    break
            else:
                raise AssertionError("no instance took " + receipt)
    return paid


async def shared_store(kind, folder, request, monkeypatch):
    """(the instances' store settings, the test's own store on the same data)."""
    if kind == "sqlite":
        from cloud.store.sqlite import SqliteStore
        path = os.path.join(folder, "mita.sqlite3")
        return {"MITA_SQLITE_PATH": path}, await SqliteStore.open(path)
    from cloud.store.firebase import FirebaseStore
    rtdb = request.getfixturevalue("rtdb_server")
    url = "https://mita-instances-%s.firebaseio.com" % uuid.uuid4().hex[:12]
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", rtdb.emulator_host)
    env = {"MITA_STORE": "firebase", "FIREBASE_DATABASE_URL": url, "MITA_AUTH": "apikey",
           "FIREBASE_DATABASE_EMULATOR_HOST": rtdb.emulator_host}
    return env, await FirebaseStore.open(url)


@pytest.fixture(params=["sqlite", "firebase"])
async def cluster(request, monkeypatch):
    folder = tempfile.mkdtemp(prefix="mita-instances-")
    os.chmod(folder, 0o755)  # mosquitto started as root reads its files as its own user
    made = store = None
    try:
        store_env, store = await shared_store(request.param, folder, request, monkeypatch)
        made = Cluster(folder, store_env, store)
        await made.add_meters(METERS)
        yield made
    finally:
        if made is not None:
            for meter in made.meters:
                await meter._close()
            made.stop()
        if store is not None:
            await store.close()
        mita_procs.stop_all()
        shutil.rmtree(folder, ignore_errors=True)


def applied(meter):
    return sorted({ack["id"] for ack in meter.acks if ack["status"] == "applied"})


async def test_three_instances_share_the_meters_and_credit_once(cluster):
    # Phase 1: all three up. Telemetry is spread over the instances, each message once.
    await cluster.telemetry(rounds=15)

    async def telemetry_total():
        counts = [await cluster.counters(n) for n in range(INSTANCES)]
        return sum(map(cluster.handled_telemetry, counts)) == cluster.sent_telemetry and counts
    counts = await eventually(telemetry_total, 20.0)
    assert counts, "telemetry: not every message handled once"
    assert all(cluster.handled_telemetry(c) > 0 for c in counts), counts  # shared, not one

    async with aiohttp.ClientSession() as session:
        paid = await pay_round_robin(cluster, session, ["RCPA%04d" % i for i in range(9)],
                                     alive=[0, 1, 2])
        # Phase 2: instance 1 killed (no goodbye) while payments and telemetry go on.
        before_kill = cluster.handled_telemetry(await cluster.counters(1))
        cluster.clouds[1].proc.stop(kill=True)
        paid.update(await pay_round_robin(cluster, session, ["RCPB%04d" % i for i in range(9)],
                                          alive=[0, 2, 1]))
        await cluster.telemetry(rounds=15)

    def all_applied():
        return sum(len(applied(m)) for m in cluster.meters) == len(paid)
    assert await eventually(all_applied, 30.0), [applied(m) for m in cluster.meters]

    # Each meter was credited exactly once per receipt, whichever instance took which copy.
    for meter in cluster.meters:
        assert meter.balance == AMOUNT_CENTS * list(paid.values()).count(meter.meter_no)
    assert len(await cluster.recharges()) == len(paid)

    # The meters' acknowledgements reach the store, also those routed to the dead instance's
    # session once it is back; and its queued telemetry with them.
    cluster.clouds[1].start()

    async def delivered():
        return all(status == "delivered" for _, _, status in await cluster.recharges())
    assert await eventually(delivered, 30.0), await cluster.recharges()

    async def telemetry_handled():
        counts = [await cluster.counters(n) for n in range(INSTANCES)]
        return before_kill + sum(map(cluster.handled_telemetry, counts))

    async def every_telemetry_once():
        return await telemetry_handled() == cluster.sent_telemetry
    assert await eventually(every_telemetry_once, 20.0), (await telemetry_handled(),
                                                          cluster.sent_telemetry)
    assert sorted(await cluster.receipts()) == sorted(paid)  # one transaction per receipt


async def test_a_lost_callback_is_settled_once_with_all_three_settling(cluster):
    # Every instance runs the settle loop; the store's lease lets one query M-Pesa a pass.
    meter = cluster.meters[0]
    cluster.daraja.outcome("none", once=True)  # the customer pays; M-Pesa never calls back
    push = await asyncio.to_thread(cluster.clouds[1].stk_push, meter.meter_no, 25)
    checkout = push["checkout_request_id"]
    assert await eventually(lambda: meter.balance == 2500, 30.0), meter.acks
    statuses = [(await asyncio.to_thread(cloud.stk_status, checkout))["status"]
                for cloud in cluster.clouds]
    assert statuses == ["success"] * INSTANCES
    await asyncio.sleep(2.0)  # a few more settle passes on all three: nothing more happens
    assert meter.balance == 2500 and len(applied(meter)) == 1
    assert len(await cluster.receipts()) == 1
    settled = [(await cluster.counters(n)).get("settled_by_query", 0) for n in range(INSTANCES)]
    assert sum(settled) == 1, settled  # one instance's query credited it, and only once
