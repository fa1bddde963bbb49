"""Issue #11's acceptance, end to end: a payment reaches the real firmware (MeterApp, its link
and MQTT client under CPython) over the broker and is also typed as its token on the keypad;
in either order the meter is credited once, and the cloud's recharge ends delivered. KES 998
and 999 too: in a 9-digit token those are the standard's codes, in the extended token such a
payment gets they are amounts (meter.token_counts.special_value)."""

import asyncio
import os
import sys

import pytest

from link_rig import ROOT, eventually

sys.path.insert(0, os.path.join(ROOT, "tests", "firmware"))

from appfakes import linked_meter  # noqa: E402
from cloud.tokens import token_config  # noqa: E402


def keypad_meter(root, rig, fake):
    """The firmware provisioned as `make provision` does: broker login and token key."""
    return linked_meter(root, fake.meter_no, "127.0.0.1", rig.port, fake.password, 0,
                        device_key=fake.device_key,
                        token=token_config(fake.meter_no, fake.device_key))


async def _paid(rig, meter_no, receipt, amount, count=2):
    await rig.pay(meter_no, receipt, amount)
    tx = await rig.store.get_transaction_by_receipt(receipt)
    assert tx["token"] and tx["token_count"] == count
    return tx


async def _delivered(rig, meter_no, seq=1):
    async def check():
        return (await rig.recharge(meter_no, seq))["status"] == "delivered"
    return await eventually(check)


async def test_delivered_over_mqtt_then_typed_is_credited_once(rig, tmp_path):
    fake = await rig.meter("MTRTK01", connect=False)
    app, link, client = keypad_meter(str(tmp_path), rig, fake)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.up.wait(), 10)
        tx = await _paid(rig, fake.meter_no, "QKTOK00001", "500.00")
        assert await eventually(lambda: app.ledger.balance == 50000)
        assert await _delivered(rig, fake.meter_no)
        assert (await rig.recharge(fake.meter_no, 1))["reason"] == "ok"  # applied
        assert app.enter_token(tx["token"]) == ("USED", 0)
        assert app.ledger.balance == 50000
    finally:
        await client.stop()
        await task


async def test_typed_while_offline_then_delivered_over_mqtt_is_credited_once(rig, tmp_path):
    await _typed_then_delivered(rig, tmp_path)


async def test_on_the_firebase_store_too(firebase_rig, tmp_path):
    await _typed_then_delivered(firebase_rig, tmp_path)


async def _typed_then_delivered(rig, tmp_path):
    fake = await rig.meter("MTRTK02", connect=False)
    app, link, client = keypad_meter(str(tmp_path), rig, fake)
    tx = await _paid(rig, fake.meter_no, "QKTOK00002", "700.00")  # the meter is offline
    assert app.enter_token(tx["token"]) == ("ACCEPT", 70000)
    assert app.ledger.balance == 70000
    task = asyncio.create_task(client.run())  # back online: the recharge arrives
    try:
        await asyncio.wait_for(client.up.wait(), 10)
        assert await _delivered(rig, fake.meter_no)
        assert (await rig.recharge(fake.meter_no, 1))["reason"] == "token_used"
        assert app.ledger.balance == 70000
        assert link.recharges >= 1
    finally:
        await client.stop()
        await task


@pytest.mark.parametrize("first,second", [(998, 999), (999, 998)])
async def test_kes_998_and_999_each_credit_once_over_mqtt_and_the_keypad(rig, tmp_path,
                                                                          first, second):
    """The first payment is typed while the meter is offline and then delivered; the second is
    delivered online and then typed; both tokens typed once more at the end."""
    fake = await rig.meter("MTRTK%d" % first, connect=False)
    app, link, client = keypad_meter(str(tmp_path), rig, fake)
    one = await _paid(rig, fake.meter_no, "QKSPC%d1" % first, "%d.00" % first)
    assert len(one["token"]) == 12  # above KES 995: an extended token
    assert app.enter_token(one["token"]) == ("ACCEPT", first * 100)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.up.wait(), 10)
        assert await _delivered(rig, fake.meter_no, 1)
        assert (await rig.recharge(fake.meter_no, 1))["reason"] == "token_used"
        two = await _paid(rig, fake.meter_no, "QKSPC%d2" % first, "%d.00" % second, count=4)
        total = (first + second) * 100
        assert await eventually(lambda: app.ledger.balance == total)
        assert await _delivered(rig, fake.meter_no, 2)
        assert (await rig.recharge(fake.meter_no, 2))["reason"] == "ok"
        for tx in (two, one):
            assert app.enter_token(tx["token"]) == ("USED", 0)
        assert app.ledger.balance == total
    finally:
        await client.stop()
        await task
