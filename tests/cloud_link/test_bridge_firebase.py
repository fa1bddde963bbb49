"""The bridge on the Firebase store, where a crashed payment writer can leave a seq unused."""

import asyncio

from link_rig import eventually


async def test_delivery_status_and_history_on_firebase(firebase_rig):
    rig = firebase_rig
    meter = await rig.meter()
    await rig.pay(meter.meter_no, "QKFB000001", "75.00")
    assert await eventually(lambda: meter.balance == 7500)

    async def delivered():
        return (await rig.recharge(meter.meter_no, 1))["status"] == "delivered"
    assert await eventually(delivered)
    await meter.send("history", {"seq": 1, "date": "2026-11-26", "hour": "07", "wh": 300,
                                 "cost_cents": 750})
    assert await eventually(lambda: meter.history_acks == [{"v": 1, "seq": 1}])
    days = await rig.store.get_consumption(meter.meter_no, "2026-11-26", "2026-11-26")
    assert days[0]["readings"] == {"07": 300}
    await meter.drop()

    async def lost():
        return (await rig.store.get_meter(meter.meter_no))["alerts"].get("connection_lost")
    assert await eventually(lost)


async def test_an_unused_firebase_seq_becomes_void_and_the_meter_is_synced_past_it(firebase_rig):
    rig = firebase_rig
    meter = await rig.meter()
    await rig.pay(meter.meter_no, "QKFB000002")
    assert await eventually(lambda: meter.balance == 10000)

    async def first_delivered():
        return (await rig.recharge(meter.meter_no, 1))["status"] == "delivered"
    assert await eventually(first_delivered)
    # No delivery pass still running (a second one, kicked by the meter's online status while
    # the first was out, would see the seq taken below before its recharge exists).
    await rig.bridge.settled()
    # A writer took seq 2 and died before writing its recharge.
    seq_ref = rig.store._ref("meters", meter.meter_no, "recharge_seq")
    await asyncio.to_thread(seq_ref.transaction, lambda cur: (cur or 0) + 1)
    await rig.pay(meter.meter_no, "QKFB000003")

    async def delivered():
        return (await rig.recharge(meter.meter_no, 3))["status"] == "delivered"
    assert await eventually(delivered)
    assert meter.balance == 20000
    # With void_after_s=0 the pass that sends seq 3 may already find seq 2 void and sync the
    # meter past it; if not, the periodic pass does. Over seq 3, which it applied, the meter's
    # own floor slides: no sync is needed for that.
    await rig.bridge.resend_pass()
    assert await eventually(lambda: meter.recharger.floor("cloud") == 3)
    floors = [m["recharge_floor"] for m in meter.received("sync")]
    assert floors and floors[-1] >= 2 and floors == sorted(floors), floors
    assert rig.bridge.counters["voided"] == 1
