"""A cloud slower than its fleet must not hoard what it has not reached yet: telemetry read
while the bridge's handlers are stuck is coalesced at once (one reading per meter), not queued
message by message in the MQTT client (what the soak found growing: some 320 bytes for each
message behind)."""

import asyncio
import json

from link_rig import eventually

READINGS = 300


async def test_telemetry_read_while_handlers_are_stuck_is_not_queued(rig):
    meter = await rig.meter()
    bridge = rig.bridge
    release = asyncio.Event()
    original = bridge.handle

    async def stuck(topic, payload, *order):  # every handler waits: the cloud has fallen behind
        await release.wait()
        await original(topic, payload, *order)
    bridge.handle = stuck
    try:
        received = bridge.counters["received"]
        for n in range(READINGS):
            await meter.send("telemetry", {"balance_cents": 1000 + n}, qos=0)
        await meter.send("status", {"state": "online", "load_connected": True})

        async def newest_stored():
            record = await rig.store.get_meter(meter.meter_no)
            return record["current_balance_cents"] == 1000 + READINGS - 1
        assert await eventually(newest_stored)
        assert bridge.counters["received"] - received == READINGS
        assert len(bridge.client.messages) <= 1  # the status at most, never the readings
    finally:
        release.set()
        bridge.handle = original

    async def status_handled():
        record = await rig.store.get_meter(meter.meter_no)
        return record["status"].get("load_connected") is True
    assert await eventually(status_handled)  # the queued message still ran, in order


async def test_an_ack_handled_after_newer_telemetry_does_not_write_its_older_balance(rig):
    """Telemetry is taken as it is read, ahead of the queued ack before it: the ack, handled
    later, must leave the newer reading in the store (its balance is the older report)."""
    meter = await rig.meter()
    bridge = rig.bridge
    release = asyncio.Event()
    original = bridge.handle

    async def stuck(topic, payload, *order):
        await release.wait()
        await original(topic, payload, *order)
    bridge.handle = stuck
    try:
        acks = bridge.counters["acks"]
        await rig.pay(meter.meter_no, "QKB0000001")
        assert await eventually(lambda: meter.acks and meter.balance == 10000)
        await meter.send("telemetry", {"balance_cents": 9000})  # read after the queued ack

        async def reading_stored():
            record = await rig.store.get_meter(meter.meter_no)
            return record["current_balance_cents"] == 9000
        assert await eventually(reading_stored)
    finally:
        release.set()
        bridge.handle = original
    assert await eventually(lambda: bridge.counters["acks"] == acks + 1)
    recharges = await rig.store.list_recharges(meter.meter_no)
    assert [r["status"] for r in recharges] == ["delivered"]  # the ack itself still counted
    assert (await rig.store.get_meter(meter.meter_no))["current_balance_cents"] == 9000
