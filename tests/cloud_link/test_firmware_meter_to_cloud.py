"""The real thing at both ends: the firmware's MeterApp with its own link and MQTT client
(under CPython, on fake hardware) against the cloud app, its bridge and store, on amqtt and
mosquitto. A payment callback closes the meter's relay; hours of consumption reach the store."""

import asyncio
import json
import os
import sys

from link_rig import ROOT, eventually

sys.path.insert(0, os.path.join(ROOT, "tests", "firmware"))

from appfakes import linked_meter  # noqa: E402
from cloud.link import payloads as lp  # noqa: E402


def firmware_meter(root, rig, fake):
    """The firmware provisioned with what registration gave `fake`'s meter."""
    tariff = {"version": 1, "utc_offset_min": 180, "bands": [{"rate": 2500}], "vat_bp": 0}
    return linked_meter(root, fake.meter_no, "127.0.0.1", rig.port, fake.password, 0,
                        tariff=tariff, device_key=fake.device_key)


async def test_a_payment_closes_the_firmware_meters_relay_and_its_history_reaches_the_store(
        rig, tmp_path):
    fake = await rig.meter("MTRFW01", connect=False)  # registration: its broker password
    app, link, client = firmware_meter(str(tmp_path), rig, fake)
    assert not app.board.relay.is_closed()  # no credit, no power
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.up.wait(), 10)

        async def online():
            return (await rig.store.get_meter(fake.meter_no))["status"].get("state") == "online"
        assert await eventually(online)
        await rig.pay(fake.meter_no, "QKFW000001", "500.00")
        assert await eventually(lambda: app.board.relay.is_closed())
        assert app.ledger.balance == 50000

        async def delivered():
            return (await rig.recharge(fake.meter_no, 1))["status"] == "delivered"
        assert await eventually(delivered)
        # a re-send (the periodic pass, a reconnect) is a duplicate on the meter
        await rig.bridge.deliver(fake.meter_no)
        again = {"id": "QKFW000001", "seq": 1, "amount_cents": 50000}
        await rig.bridge.publish("meters/%s/recharge" % fake.meter_no, lp.recharge_message(
            again, fake.meter_no, lp.command_key(fake.device_key, fake.meter_no)))
        assert await eventually(lambda: link.recharges >= 2)
        # the same credit unsigned, as a forger on the broker would send it: refused, counted
        await rig.bridge.publish("meters/%s/recharge" % fake.meter_no, json.dumps(
            dict(again, v=1, seq=2, id="FORGED", source="cloud")).encode())
        assert await eventually(lambda: link.refused == 1)
        assert app.ledger.balance == 50000

        app.board.sensor.power_w = 1000
        for _ in range(3 * 12):  # three hours of metering, five minutes a step
            app.clock.advance(300 * 1000)
            app.tick()
            link.tick(300)

        async def history():
            return await rig.store.get_consumption(fake.meter_no, "2026-01-01", "2026-01-01")
        days = await eventually(lambda: _hours(history, 3), 10.0)
        assert days, "three closed hours in the store"
        assert days[0]["readings"] == {"03": 1000, "04": 1000, "05": 1000}  # local EAT hours
        assert await eventually(lambda: link.history.unacked() == 0)
        # everything the firmware sent (status, telemetry, acks, history) fit the contract
        counters = rig.bridge.counters
        assert (counters["malformed"], counters["history_bad"], counters["errors"]) == (0, 0, 0)
        assert counters["telemetry_written"] >= 1 and link.malformed == 0

        async def balance_reported():
            stored = await rig.store.get_meter(fake.meter_no)
            return stored["current_balance_cents"] == app.ledger.balance
        app.tick()
        link.send_telemetry()
        assert await eventually(balance_reported)
    finally:
        await client.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _hours(history, count):
    days = await history()
    return days if days and len(days[0]["readings"]) >= count else None
