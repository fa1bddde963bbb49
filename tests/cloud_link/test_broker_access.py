"""The brokers as the cloud sets them up: who may connect, where each account may publish and
subscribe, and the bridge riding out a broker restart."""

import asyncio
import json

import aiomqtt

from link_rig import BRIDGE_PASSWORD, FakeMeter, connack, eventually
from cloud.link.accounts import BRIDGE_USERNAME


async def test_wrong_password_and_unknown_accounts_are_refused(rig):
    meter = await rig.meter(connect=False)
    assert await connack(rig.port, meter.meter_no, meter.password) == 0
    assert await connack(rig.port, meter.meter_no, meter.password + "x") not in (0, None)
    assert await connack(rig.port, "NOSUCHMETER", meter.password) not in (0, None)
    assert await connack(rig.port, BRIDGE_USERNAME, "not-the-bridge-password") not in (0, None)
    assert await connack(rig.port, BRIDGE_USERNAME, BRIDGE_PASSWORD) == 0
    assert await connack(rig.port, meter.meter_no, "") not in (0, None)


async def test_a_meter_cannot_publish_under_another_meters_topics(rig):
    victim = await rig.meter("MTRVICTIM")
    forger = await rig.meter("MTRFORGER")
    before = await rig.store.get_meter(victim.meter_no)
    await rig.pay(victim.meter_no, "QKF0000001")

    async def delivered():
        return (await rig.recharge(victim.meter_no, 1))["status"] == "delivered"
    assert await eventually(delivered)
    received = rig.bridge.counters["received"]
    topic = "meters/%s/" % victim.meter_no
    await forger.client.publish(topic + "telemetry", json.dumps(
        {"v": 1, "balance_cents": 99999999, "alerts": {"tamper": True}}), qos=1)
    await forger.client.publish(topic + "status", json.dumps(
        {"v": 1, "state": "offline", "reason": "connection_lost"}), qos=1, retain=True)
    await forger.client.publish(topic + "history", json.dumps(
        {"v": 1, "seq": 1, "date": "2026-11-26", "hour": "01", "wh": 9999, "cost_cents": 1}),
        qos=1)
    # A marker through the forger's own topic: once it is in, the forged ones would be too.
    await forger.send("telemetry", {"balance_cents": 4242}, qos=1)

    async def marker():
        return (await rig.store.get_meter(forger.meter_no))["current_balance_cents"] == 4242
    assert await eventually(marker)
    assert rig.bridge.counters["received"] == received + 1
    after = await rig.store.get_meter(victim.meter_no)
    assert after["current_balance_cents"] == 10000
    assert after["alerts"] == dict(before["alerts"], connection_lost=False)
    assert after["status"]["state"] == "online"
    assert await rig.store.get_consumption(victim.meter_no, "2026-11-26", "2026-11-26") == []


async def test_a_meter_cannot_read_another_meters_recharges(rig):
    victim = await rig.meter("MTRVICTIM")
    snoop = await rig.meter("MTRSNOOP")
    stolen = []
    try:
        await snoop.client.subscribe("meters/%s/recharge" % victim.meter_no, qos=1)
    except aiomqtt.MqttError:
        pass  # a broker may refuse the SUBSCRIBE outright; either way nothing may arrive
    await snoop.client.subscribe("meters/#", qos=1)
    await snoop.client.subscribe("meters/+/recharge", qos=1)
    before = len(snoop.messages)
    await rig.pay(victim.meter_no, "QKP0000001")
    assert await eventually(lambda: victim.balance == 10000)
    await rig.pay(snoop.meter_no, "QKP0000002")  # its own arrives, so the link is alive
    assert await eventually(lambda: snoop.balance == 10000)
    stolen = [m for k, m in snoop.messages[before:] if m.get("id") == "QKP0000001"]
    assert stolen == []


async def test_a_newly_registered_meter_can_connect_at_once(rig):
    meter = await rig.meter("MTRNEW", connect=False)
    assert await connack(rig.port, meter.meter_no, meter.password) == 0


async def test_the_bridge_reconnects_after_a_broker_restart_and_delivers(mosquitto_rig):
    rig = mosquitto_rig
    meter = await rig.meter()
    connects = rig.bridge.counters["connects"]
    await rig.mosquitto.stop_process()
    assert await eventually(lambda: not rig.bridge.connected.is_set())
    await rig.pay(meter.meter_no, "QKB0000001")  # recorded while the broker is down
    await rig.mosquitto.start()
    assert await eventually(lambda: rig.bridge.counters["connects"] == connects + 1)
    # the meter's own client reconnects too (the broker lost its session: no persistence)
    fresh = FakeMeter("127.0.0.1", rig.port, meter.meter_no, meter.password,
                      device_key=meter.device_key)
    await fresh.connect()
    assert await eventually(lambda: fresh.balance == 10000)

    async def delivered():
        return (await rig.recharge(meter.meter_no, 1))["status"] == "delivered"
    assert await eventually(delivered)
    await fresh.disconnect()


async def test_the_in_process_broker_refuses_connections_while_the_store_is_down(rig):
    if rig.kind != "amqtt":
        return  # mosquitto checks its own file; nothing of ours runs on its CONNECT
    meter = await rig.meter(connect=False)
    store = rig.store

    async def broken(_meter_no):
        raise OSError("disk gone")
    original = store.get_device_key
    store.get_device_key = broken
    try:
        assert await connack(rig.port, meter.meter_no, meter.password) not in (0, None)
    finally:
        store.get_device_key = original
    assert await connack(rig.port, meter.meter_no, meter.password) == 0
