"""Recharges over the link: a payment reaches the meter, its ack marks it delivered, and
re-sends, duplicates, rejections and gaps all end with every credit applied exactly once."""

import asyncio
import json

from link_rig import eventually


async def test_a_paid_recharge_is_published_applied_once_and_marked_delivered(rig):
    meter = await rig.meter()
    await rig.pay(meter.meter_no, "QKX0000001", "150.00")
    assert await eventually(lambda: meter.balance == 15000)
    assert meter.received("recharge") == [
        {"v": 1, "id": "QKX0000001", "seq": 1, "amount_cents": 15000, "source": "cloud",
         "token_count": 2}]  # the count of the payment's token: one credit, either path

    async def delivered():
        return (await rig.recharge(meter.meter_no, 1))["status"] == "delivered"
    assert await eventually(delivered)

    async def balance_from_the_ack():  # the bridge's next write after marking it delivered
        return (await rig.store.get_meter(meter.meter_no))["current_balance_cents"] == 15000
    assert await eventually(balance_from_the_ack)


async def test_an_stk_payment_callback_reaches_the_meter(rig):
    from cloud_harness import stk_success
    meter = await rig.meter()
    await rig.h.sandbox_settings(default_outcome="none", callback_delay_s=0)
    resp = await rig.h.client.post("/api/payments/stkpush", headers=rig.h.op(), json={
        "meter_no": meter.meter_no, "phone": "0712345678", "amount": 250})
    assert resp.status == 201, await resp.text()
    checkout = (await resp.json())["checkout_request_id"]
    resp = await rig.h.post_callback(stk_success(checkout, "QKS0000001", 250.0))
    assert resp.status == 200
    assert await eventually(lambda: meter.balance == 25000)


async def test_recharges_made_while_the_meter_is_away_arrive_once_when_it_returns(rig):
    meter = await rig.meter()
    await meter.drop()
    await eventually(lambda: rig.bridge.known(meter.meter_no).online is False)
    for n in range(3):
        await rig.pay(meter.meter_no, "QKA%07d" % n, "10.00")
    await meter.connect()
    assert await eventually(lambda: meter.balance == 3000)

    async def all_delivered():
        return all(r["status"] == "delivered"
                   for r in await rig.store.list_recharges(meter.meter_no))
    assert await eventually(all_delivered)
    # The broker's held copies and the bridge's re-send both arrived: duplicates, no credit.
    assert meter.recharger.applied_count == 3


async def test_a_duplicate_ack_changes_nothing(rig):
    meter = await rig.meter()
    await rig.pay(meter.meter_no, "QKD0000001")

    async def delivered():
        return (await rig.recharge(meter.meter_no, 1))["status"] == "delivered"
    assert await eventually(delivered)
    before = await rig.recharge(meter.meter_no, 1)
    acks = rig.bridge.counters["acks"]
    await meter.send("recharge/ack", {"seq": 1, "id": "QKD0000001", "status": "duplicate",
                                      "reason": "already_applied", "balance_cents": 10000})
    # a late "rejected" for a delivered recharge must not undo the credit either
    await meter.send("recharge/ack", {"seq": 1, "id": "QKD0000001", "status": "rejected",
                                      "reason": "bad_amount"})
    assert await eventually(lambda: rig.bridge.counters["acks"] == acks + 2)
    assert await rig.recharge(meter.meter_no, 1) == before


async def test_a_rejected_ack_is_recorded_with_its_reason(rig):
    meter = await rig.meter()
    meter.refuse[1] = "too_large"
    await rig.pay(meter.meter_no, "QKR0000001")

    async def rejected():
        r = await rig.recharge(meter.meter_no, 1)
        return r["status"] == "rejected" and r["reason"] == "too_large"
    assert await eventually(rejected)
    assert meter.balance == 0
    # counted once the bridge resumes after the store write the check above already saw
    assert await eventually(lambda: rig.bridge.counters["rejected"] >= 1)


async def test_storage_error_and_ahead_of_window_stay_pending_and_go_again(rig):
    meter = await rig.meter(connect=False)
    await rig.pay(meter.meter_no, "QKS0000009")
    for reason in ("storage_error", "ahead_of_window"):
        await rig.bridge.handle("meters/%s/recharge/ack" % meter.meter_no, json.dumps({
            "v": 1, "seq": 1, "id": "QKS0000009", "status": "rejected", "reason": reason}))
        recharge = await rig.recharge(meter.meter_no, 1)
        assert (recharge["status"], recharge["acked_at"]) == ("pending", None)
    assert rig.bridge.counters["retry_later"] == 2
    meter.refuse_once[1] = "storage_error"  # the flash write fails once more on the meter
    await meter.connect()
    assert await eventually(lambda: rig.bridge.counters["retry_later"] == 3)
    await rig.bridge.resend_pass()
    assert await eventually(lambda: meter.balance == 10000)

    async def delivered():
        return (await rig.recharge(meter.meter_no, 1))["status"] == "delivered"
    assert await eventually(delivered)
    assert meter.recharger.applied_count == 1


async def test_recharges_past_the_window_wait_for_acks_and_then_arrive_in_order(rig):
    meter = await rig.meter()
    await meter.drop()
    await eventually(lambda: rig.bridge.known(meter.meter_no).online is False)
    for n in range(70):  # more than the meter's window of 64
        await rig.pay(meter.meter_no, "QKW%07d" % n, "1.00")
    await meter.connect()
    assert await eventually(lambda: meter.balance == 7000, 10.0)
    assert meter.recharger.applied_count == 70
    assert meter.recharger.floor("cloud") == 70

    async def all_delivered():
        return all(r["status"] == "delivered"
                   for r in await rig.store.list_recharges(meter.meter_no))
    assert await eventually(all_delivered)


async def test_a_gap_in_the_seqs_is_synced_past_so_it_never_wedges_the_meter(rig):
    """A Firebase writer that crashed after taking a seq leaves a number with no recharge."""
    meter = await rig.meter()
    await rig.pay(meter.meter_no, "QKG0000001")
    assert await eventually(lambda: meter.balance == 10000)
    # seq 2 is taken and never written (the crashed writer)
    db_meter = await rig.store.get_meter(meter.meter_no)
    await _burn_seq(rig.store, meter.meter_no, db_meter["recharge_seq"] + 1)
    for n in range(65):  # seq 3..67: without a sync, 67 > floor 1 + 64 is ahead_of_window
        await rig.pay(meter.meter_no, "QKH%07d" % n, "1.00")
    await rig.bridge.resend_pass()
    assert await eventually(lambda: meter.balance == 10000 + 6500, 10.0)
    syncs = meter.received("sync")
    assert syncs and syncs[-1]["recharge_floor"] >= 2
    assert meter.recharger.floor("cloud") == 67
    assert rig.bridge.counters["voided"] == 1


async def _burn_seq(store, meter_no, seq):
    """What a crashed Firebase writer leaves: the meter's seq counter moved, no recharge."""
    def burn(db):
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE meters SET recharge_seq = ? WHERE meter_no = ?", (seq, meter_no))
        db.execute("COMMIT")
    await store._run(lambda: burn(store._db))


async def test_a_meter_that_lost_its_state_gets_the_floor_on_reconnect(rig):
    meter = await rig.meter()
    await rig.pay(meter.meter_no, "QKC0000001")
    assert await eventually(lambda: meter.balance == 10000)

    async def delivered():
        return (await rig.recharge(meter.meter_no, 1))["status"] == "delivered"
    assert await eventually(delivered)
    await meter.disconnect()
    meter.recharger = type(meter.recharger)(type(meter.recharger.ledger)(0))  # corrupt boot
    meter.messages.clear()
    await meter.connect()
    assert await eventually(lambda: meter.received("sync") == [{"v": 1, "recharge_floor": 1}])
    assert meter.recharger.floor("cloud") == 1
    # the old credit, if it came again, would be a duplicate: never applied twice
    assert meter.recharger.apply(json.loads(json.dumps(
        {"id": "QKC0000001", "seq": 1, "amount_cents": 10000, "source": "cloud"})), 0) == (
        "duplicate", "already_applied")


async def test_an_unacknowledged_recharge_goes_again_periodically_but_not_too_soon(rig):
    meter = await rig.meter()
    meter.lose_acks.add(1)  # the meter applies it but its ack never arrives
    await rig.pay(meter.meter_no, "QKT0000001")
    assert await eventually(lambda: meter.balance == 10000)
    await rig.bridge.resend_pass()  # right after sending: nothing goes again yet
    await _settle(rig)
    assert len(meter.received("recharge")) == 1
    clock = rig.bridge.clock
    rig.bridge.clock = lambda: clock() + 2 * rig.bridge.resend_every_s
    await rig.bridge.resend_pass()
    assert await eventually(lambda: len(meter.received("recharge")) == 2)

    async def delivered():
        return (await rig.recharge(meter.meter_no, 1))["status"] == "delivered"
    assert await eventually(delivered)
    assert meter.acks[-1]["status"] == "duplicate" and meter.balance == 10000


async def test_meters_known_offline_get_no_periodic_resends(rig):
    meter = await rig.meter()
    await meter.drop()
    assert await eventually(lambda: rig.bridge.known(meter.meter_no).online is False)
    await rig.pay(meter.meter_no, "QKO0000001")
    assert await eventually(lambda: rig.bridge.counters["recharges_sent"] == 1)
    clock = rig.bridge.clock
    rig.bridge.clock = lambda: clock() + 2 * rig.bridge.resend_every_s
    await rig.bridge.resend_pass()
    await _settle(rig)
    assert rig.bridge.counters["recharges_sent"] == 1


async def test_a_restarted_bridge_delivers_what_was_left_pending(rig):
    from cloud.link.bridge import Bridge
    meter = await rig.meter()
    await rig.bridge.stop()  # the cloud goes down; a payment lands in the store meanwhile
    await rig.pay(meter.meter_no, "QKZ0000001")
    assert (await rig.recharge(meter.meter_no, 1))["status"] == "pending"
    fresh = Bridge(rig.store, dict(rig.bridge.broker), resend_every_s=3600)
    await fresh.start()
    try:
        # the meter's retained online status reaches the new bridge, which sends what is due
        assert await eventually(lambda: meter.balance == 10000)

        async def delivered():
            return (await rig.recharge(meter.meter_no, 1))["status"] == "delivered"
        assert await eventually(delivered)
    finally:
        await fresh.stop()


async def _settle(rig):
    """Let delivery passes in flight finish (no sleeping on time: wait for the tasks)."""
    for _ in range(3):
        await rig.bridge.settled()
        await asyncio.sleep(0.02)
