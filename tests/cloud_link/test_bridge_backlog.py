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

    async def stuck(topic, payload):  # every handler waits: the cloud has fallen behind
        await release.wait()
        await original(topic, payload)
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
