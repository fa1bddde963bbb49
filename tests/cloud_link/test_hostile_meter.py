"""A meter's own broker login in an attacker's hands (it sits in config.json, readable over
USB), against both brokers as the cloud sets them up: it can neither give its meter credit nor
reach another client's session. Each attempt is refused or dropped, the rightful clients stay
connected, and the in-process broker counts it (mosquitto logs it)."""

import asyncio
import json

import aiomqtt

from link_rig import FakeMeter, connack, eventually
from cloud.link.accounts import BRIDGE_USERNAME

SELF_CREDIT = {"v": 1, "id": "SELF1", "seq": 1, "amount_cents": 100000, "source": "cloud"}


async def _still_delivers(rig, meter, receipt, balance):
    """The rightful meter is still connected: a real payment reaches it."""
    await rig.pay(meter.meter_no, receipt)
    return await eventually(lambda: meter.balance == balance)


async def test_a_meter_cannot_credit_itself_nor_forge_a_tariff_or_a_sync(rig):
    meter = await rig.meter("MITA0002")
    connects = rig.bridge.counters["connects"]
    await meter.send("recharge", {}, raw=json.dumps(SELF_CREDIT))
    await meter.send("tariff", {"tariff": {"version": 99, "bands": [{"rate": 1}], "vat_bp": 0}})
    await meter.send("sync", {"recharge_floor": 5000})
    # the replay of a real, recorded recharge onto its own topic is refused the same way
    await rig.pay(meter.meter_no, "QKH0000001")
    assert await eventually(lambda: meter.balance == 10000)
    recorded = meter.received("recharge")[-1]
    await meter.send("recharge", {}, raw=json.dumps(dict(recorded, seq=2, id="REPLAY")))
    assert await _still_delivers(rig, meter, "QKH0000002", 20000)  # the marker: all came by now
    kinds = [(k, m.get("id")) for k, m in meter.messages]
    assert ("recharge", "SELF1") not in kinds and ("recharge", "REPLAY") not in kinds
    assert [m for m in meter.received("tariff") if m.get("tariff", {}).get("version") == 99] == []
    assert [m for m in meter.received("sync") if m.get("recharge_floor") == 5000] == []
    assert meter.balance == 20000 and meter.recharger.floor("cloud") == 2
    assert rig.bridge.counters["connects"] == connects
    assert await rig.refused_publishes() >= 4


async def _hostile_connect(rig, login, client_id, clean_session):
    """Connect with `login`'s credentials under `client_id`; None if the broker refused."""
    client = aiomqtt.Client("127.0.0.1", rig.port, username=login.meter_no,
                            password=login.password, identifier=client_id,
                            clean_session=clean_session, keepalive=60)
    try:
        await client.__aenter__()
    except aiomqtt.MqttError:
        return None
    return client


async def test_a_login_cannot_take_over_another_meters_session_nor_steal_its_recharge(rig):
    victim = await rig.meter("MITA0001")
    attacker = await rig.meter("MITA0002", connect=False)  # its login, from its config.json
    # while the victim is connected: claiming its client id must not kick it off
    hostile = await _hostile_connect(rig, attacker, victim.meter_no, clean_session=True)
    assert await _still_delivers(rig, victim, "QKT0000001", 10000)
    if hostile is not None:  # mosquitto: accepted, but as MITA0002's own session
        await hostile.__aexit__(None, None, None)
    # while it is away: its persistent session queues a recharge nobody else may take
    await victim.disconnect()
    await rig.pay(victim.meter_no, "QKT0000002")
    assert await eventually(lambda: rig.bridge.counters["recharges_sent"] >= 2)
    hostile = await _hostile_connect(rig, attacker, victim.meter_no, clean_session=False)
    stolen = []
    if hostile is not None:
        await hostile.subscribe("meters/%s/recharge" % victim.meter_no, qos=1)

        async def listen():
            async for message in hostile.messages:
                stolen.append(message)
        task = asyncio.create_task(listen())
    await victim.connect()  # the rightful meter comes back and gets its credit
    assert await eventually(lambda: victim.balance == 20000)
    if hostile is not None:
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await hostile.__aexit__(None, None, None)
    assert stolen == []
    assert [a["status"] for a in victim.acks] == ["applied", "applied"]
    assert await rig.refused_client_ids() == (2 if rig.kind == "amqtt" else 0)


async def test_a_login_cannot_take_the_bridges_client_id(rig):
    meter = await rig.meter("MITA0001")
    attacker = await rig.meter("MITA0002", connect=False)
    connects = rig.bridge.counters["connects"]
    for clean in (True, False):
        hostile = await _hostile_connect(rig, attacker, BRIDGE_USERNAME, clean_session=clean)
        if hostile is not None:
            await hostile.__aexit__(None, None, None)
    assert await connack(rig.port, attacker.meter_no, attacker.password,
                         client_id=BRIDGE_USERNAME) == (2 if rig.kind == "amqtt" else 0)
    # the bridge never lost its link: no reconnect, and a payment still goes through
    assert await _still_delivers(rig, meter, "QKB0000001", 10000)
    assert rig.bridge.counters["connects"] == connects and rig.bridge.connected.is_set()
    if rig.kind == "amqtt":
        assert await rig.refused_client_ids() == 3


async def test_a_login_reads_no_other_meters_retained_status(rig):
    other = await rig.meter("MITA0002")  # its online status is retained at the broker
    await other.send("status", {"state": "online", "load_connected": True}, retain=True)
    login = await rig.meter("MITA0001", connect=False)
    got = []
    async with aiomqtt.Client("127.0.0.1", rig.port, username=login.meter_no,
                              password=login.password, identifier=login.meter_no,
                              clean_session=True) as client:
        await client.subscribe("meters/%s/recharge" % login.meter_no, qos=1)

        async def listen():
            async for message in client.messages:
                got.append(str(message.topic))
        task = asyncio.create_task(listen())
        await other.send("status", {"state": "online", "load_connected": False}, retain=True)
        await _still_delivers(rig, other, "QKS0000001", 10000)  # the marker: all came by now
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert got == []


async def test_a_reported_balance_is_a_report_never_money(rig):
    meter = await rig.meter("MITA0004")
    await rig.pay(meter.meter_no, "QKM0000001")
    assert await eventually(lambda: meter.balance == 10000)
    await meter.send("telemetry", {"balance_cents": 10**9}, qos=1)  # a meter that lies

    async def reported():
        return (await rig.store.get_meter(meter.meter_no))["current_balance_cents"] == 10**9
    assert await eventually(reported)
    # the record is the payments and the recharges they made, as before the report
    transactions = await rig.store.list_transactions_for_meter(meter.meter_no)
    assert [(t["mpesa_receipt"], t["amount_cents"]) for t in transactions] == [
        ("QKM0000001", 10000)]
    recharges = await rig.store.list_recharges(meter.meter_no)
    assert [(r["seq"], r["amount_cents"]) for r in recharges] == [(1, 10000)]
    await rig.pay(meter.meter_no, "QKM0000002")  # and the next credit is the payment's, no more
    assert await eventually(lambda: meter.balance == 20000)
    assert [r["amount_cents"] for r in await rig.store.list_recharges(meter.meter_no)] == [
        10000, 10000]


async def test_a_rotated_key_signs_from_the_next_connection_and_nothing_pending_is_lost(rig):
    meter = await rig.meter("MITA0003")
    resp = await rig.h.client.post("/api/meters/%s/key" % meter.meter_no, headers=rig.h.op())
    assert resp.status == 200, await resp.text()
    rotated = await resp.json()
    assert rotated["device_key"] != meter.device_key and "mqtt_password" in rotated
    refused = await rig.h.client.post("/api/meters/%s/key" % meter.meter_no)
    assert refused.status == 401  # operators only
    # Re-provisioned with the new key while a payment is pending: the old session ends with a
    # power cut, not a goodbye (mosquitto's reload after the rotation may already have closed
    # it, the login being gone, and a goodbye would then wait for a PUBACK that never comes).
    await meter.drop()
    await rig.pay(meter.meter_no, "QKR0000001")
    fresh = FakeMeter("127.0.0.1", rig.port, meter.meter_no, rotated["mqtt_password"],
                      device_key=rotated["device_key"])
    if rig.mosquitto is not None:  # the password file learned the new login at rotation
        async def accepted():
            return await connack(rig.port, meter.meter_no, rotated["mqtt_password"]) == 0
        assert await eventually(accepted, 3.0)
    await fresh.connect()
    assert await eventually(lambda: fresh.balance == 10000)
    assert fresh.refused == []
    # the old key opens nothing the cloud sends now
    stale = FakeMeter("127.0.0.1", rig.port, meter.meter_no, "", device_key=meter.device_key)
    assert stale.key != fresh.key
    await fresh.disconnect()
