"""What meters report over the link lands in the store: status and connection_lost from the
last will, telemetry balance and alerts, hourly history (stored once, acknowledged); bad
payloads are counted and dropped."""

import asyncio
import json

from link_rig import eventually


async def _meter_record(rig, meter_no):
    return await rig.store.get_meter(meter_no)


async def test_last_will_sets_connection_lost_and_online_clears_it(rig):
    meter = await rig.meter()
    record = await _meter_record(rig, meter.meter_no)
    assert record["alerts"].get("connection_lost") is False
    assert record["status"]["mqtt_status"] == "connected"
    await meter.drop()

    async def lost():
        m = await _meter_record(rig, meter.meter_no)
        return m["alerts"].get("connection_lost") is True and m["status"]["state"] == "offline"
    assert await eventually(lost)
    record = await _meter_record(rig, meter.meter_no)
    assert record["status"]["mqtt_status"] == "disconnected"
    assert record["status"]["reason"] == "connection_lost"
    await meter.connect()

    async def back():
        m = await _meter_record(rig, meter.meter_no)
        return m["alerts"].get("connection_lost") is False and m["status"]["state"] == "online"
    assert await eventually(back)


async def test_a_clean_disconnect_also_counts_as_connection_lost(rig):
    meter = await rig.meter()
    await meter.disconnect()

    async def lost():
        m = await _meter_record(rig, meter.meter_no)
        return m["alerts"].get("connection_lost") is True
    assert await eventually(lost)


async def test_telemetry_updates_balance_and_alerts_but_never_connection_lost(rig):
    meter = await rig.meter()
    await meter.send("telemetry", {"t": 1764120000, "balance_cents": 1500, "power_w": 230,
                                   "alerts": {"low_balance": True, "critical_balance": True,
                                              "connection_lost": True}}, qos=0)

    async def stored():
        m = await _meter_record(rig, meter.meter_no)
        return m["current_balance_cents"] == 1500 and m["alerts"].get("low_balance") is True
    assert await eventually(stored)
    record = await _meter_record(rig, meter.meter_no)
    assert record["alerts"]["critical_balance"] is True
    assert record["alerts"]["connection_lost"] is False  # the cloud's alone to set


async def test_history_is_stored_once_even_if_sent_again_and_each_copy_is_acked(rig):
    meter = await rig.meter()
    record = {"seq": 412, "hour_start": 1764118800, "date": "2026-11-26", "hour": "03",
              "wh": 850, "cost_cents": 2125}
    for _ in range(3):
        await meter.send("history", record)
    await meter.send("history", dict(record, seq=413, hour="04", wh=100, cost_cents=250))
    assert await eventually(lambda: len(meter.history_acks) == 4)
    assert {a["seq"] for a in meter.history_acks} == {412, 413}
    assert all("ok" not in a for a in meter.history_acks)
    days = await rig.store.get_consumption(meter.meter_no, "2026-11-26", "2026-11-26")
    assert days == [{"date": "2026-11-26", "total_consumption_wh": 950, "cost_cents": 2375,
                     "readings": {"03": 850, "04": 100}, "costs": {"03": 2125, "04": 250}}]


async def test_a_history_record_with_bad_fields_is_acked_not_ok_and_not_stored(rig):
    meter = await rig.meter()
    await meter.send("history", {"seq": 7, "date": "2026-11-26", "hour": "24", "wh": 5,
                                 "cost_cents": 1})
    await meter.send("history", {"seq": 8, "date": "2026-13-45", "hour": "01", "wh": 5,
                                 "cost_cents": 1})
    assert await eventually(lambda: len(meter.history_acks) == 2)
    assert meter.history_acks == [{"v": 1, "seq": 7, "ok": False}, {"v": 1, "seq": 8, "ok": False}]
    assert await rig.store.get_consumption(meter.meter_no, "2026-01-01", "2026-12-31") == []


async def test_malformed_and_oversized_payloads_are_counted_and_dropped(rig):
    meter = await rig.meter()
    counters = rig.bridge.counters
    bad = [b"\xff\xfe garbage", b"[1, 2]", b'{"state": "online"}', b'{"v": 2, "state": "x"}',
           b'{"v": true, "state": "online"}', b'{"v": 1, "state": "sleeping"}']
    for raw in bad:
        await meter.send("status", {}, raw=raw)
    await meter.send("telemetry", {}, raw=json.dumps({"v": 1, "balance_cents": 1.5}))
    await meter.send("recharge/ack", {}, raw=json.dumps({"v": 1, "status": "applied"}))
    await meter.send("history", {}, raw=json.dumps({"v": 1, "seq": "9"}))
    await meter.send("telemetry", {}, raw=json.dumps({"v": 1, "pad": "x" * 5000}))
    assert await eventually(lambda: counters["malformed"] == 9 and counters["oversized"] == 1)
    record = await _meter_record(rig, meter.meter_no)
    assert record["status"]["state"] == "online"
    assert meter.history_acks == []
    # and the link still works afterwards
    await rig.pay(meter.meter_no, "QKM0000001")
    assert await eventually(lambda: meter.balance == 10000)


async def test_a_tariff_newer_than_the_meters_is_offered_when_it_comes_online(rig):
    tariff = {"version": 4, "bands": [{"rate": 2500}]}
    await rig.store.set_tariff(tariff)
    meter = await rig.meter(connect=False)
    await meter.connect(tariff_version=3)
    assert await eventually(lambda: meter.received("tariff"))
    assert meter.received("tariff") == [{"v": 1, "tariff": tariff}]
    await meter.send("tariff/ack", {"version": 4, "ok": True, "reason": "ok"})

    async def taken():
        return (await _meter_record(rig, meter.meter_no))["status"].get("tariff_version") == 4
    assert await eventually(taken)


async def test_a_failing_handler_costs_one_message_not_the_link(rig):
    meter = await rig.meter()
    original = rig.store.update_meter_status

    async def broken(*args):
        raise RuntimeError("a bug")
    rig.store.update_meter_status = broken
    try:
        await meter.send("status", {"state": "online", "load_connected": True}, retain=True)
        assert await eventually(lambda: rig.bridge.counters["errors"] == 1)
    finally:
        rig.store.update_meter_status = original
    await rig.pay(meter.meter_no, "QKE0000001")
    assert await eventually(lambda: meter.balance == 10000)


async def test_a_bridge_loop_killed_by_a_bug_is_restarted_and_counted(rig):
    first = await rig.meter("MTRDIE1", connect=False)
    second = await rig.meter("MTRDIE2", connect=False)
    bridge = rig.bridge
    calls = []

    def dies_once(meter_no, kind, **fields):
        calls.append((meter_no, kind))
        if len(calls) == 1:
            raise RuntimeError("a bug in a listener")  # escapes the telemetry writer
    bridge.on_event = dies_once
    await bridge.handle("meters/%s/telemetry" % first.meter_no,
                        json.dumps({"v": 1, "balance_cents": 1000}))
    assert await eventually(lambda: bridge.counters["task_restarts"] == 1)
    # the writer is back: the next meter's reading still reaches the store
    await bridge.handle("meters/%s/telemetry" % second.meter_no,
                        json.dumps({"v": 1, "balance_cents": 2000}))

    async def written():
        return (await _meter_record(rig, second.meter_no))["current_balance_cents"] == 2000
    assert await eventually(written)
    assert await eventually(lambda: (second.meter_no, "telemetry") in calls)
    assert bridge.counters["task_restarts"] == 1 and bridge.connected.is_set()


async def test_a_meter_stuck_on_a_slow_store_call_holds_up_only_itself_and_keeps_its_order(rig):
    slow = await rig.meter("MTRSLOW")
    other = await rig.meter("MTROTHER")
    release = asyncio.Event()
    original = rig.store.put_consumption_hour

    async def stalls(meter_no, *args):
        if meter_no == slow.meter_no:
            await release.wait()
        return await original(meter_no, *args)
    rig.store.put_consumption_hour = stalls
    try:
        for seq in (1, 2):
            await slow.send("history", {"seq": seq, "date": "2026-11-26", "hour": "0%d" % seq,
                                        "wh": 1, "cost_cents": 1})
        await other.send("history", {"seq": 9, "date": "2026-11-26", "hour": "09", "wh": 1,
                                     "cost_cents": 1})
        assert await eventually(lambda: other.history_acks == [{"v": 1, "seq": 9}])
        assert slow.history_acks == []
        release.set()
        assert await eventually(lambda: len(slow.history_acks) == 2)
        assert [a["seq"] for a in slow.history_acks] == [1, 2]
    finally:
        rig.store.put_consumption_hour = original


async def test_a_fleets_telemetry_is_written_in_one_store_write_per_pass(rig):
    meters = ["MTRB%03d" % n for n in range(12)]
    for meter_no in meters:
        await rig.meter(meter_no, connect=False)
    bridge = rig.bridge
    batches, written = bridge.counters["telemetry_batches"], bridge.counters["telemetry_written"]
    # Handled back to back, as a burst from the broker is: none waits for the store.
    for n, meter_no in enumerate(meters):
        await bridge.handle("meters/%s/telemetry" % meter_no,
                            json.dumps({"v": 1, "balance_cents": 1000 + n}))
    await bridge.handle("meters/%s/telemetry" % meters[0],  # a newer reading replaces one
                        json.dumps({"v": 1, "balance_cents": 999,
                                    "alerts": {"low_balance": True}}))
    assert await eventually(lambda: bridge.counters["telemetry_written"] == written + 12)
    assert bridge.counters["telemetry_batches"] == batches + 1
    assert bridge.counters["telemetry_coalesced"] >= 1
    first = await rig.store.get_meter(meters[0])
    assert first["current_balance_cents"] == 999 and first["alerts"]["low_balance"] is True
    assert [(await rig.store.get_meter(m))["current_balance_cents"] for m in meters[1:]] == [
        1000 + n for n in range(1, 12)]
