"""The attacks of tests/cloud_link/test_hostile_meter.py aimed at the real firmware (MeterApp
with its own link and MQTT client, under CPython on fake hardware), on amqtt and mosquitto:
from a hostile client holding the meter's own login, and from a compromised broker (here the
bridge's login, which may publish commands) sending a message signed with the wrong key and a
replay of another meter's recorded recharge. Nothing is credited, each forgery that reaches the
meter is counted as refused, and the meter stays connected and still takes a real payment."""

import asyncio
import json

import aiomqtt

from link_rig import eventually
from cloud.link import payloads as lp
from test_firmware_meter_to_cloud import firmware_meter


async def _as_its_own_login(rig, fake, kind, msg):
    """Publish with the meter's own broker login, as someone who read its config.json (the
    client id must be the login's, so this is done while the meter itself is off)."""
    async with aiomqtt.Client("127.0.0.1", rig.port, username=fake.meter_no,
                              password=fake.password, identifier=fake.meter_no,
                              clean_session=True) as hostile:
        await hostile.publish("meters/%s/%s" % (fake.meter_no, kind), json.dumps(msg), qos=1)


def _forgeries(target, other):
    """What a compromised broker can send `target`: commands signed with a guessed key, and
    the recharge the cloud really signed for `other`, replayed."""
    guessed = lp.command_key("dk_guessed", target.meter_no)
    credit = {"id": "FORGED1", "seq": 1, "amount_cents": 100000}
    recorded = lp.recharge_message({"id": "QKO0000001", "seq": 1, "amount_cents": 10000},
                                   other.meter_no, lp.command_key(other.device_key, other.meter_no))
    tariff = {"version": 99, "bands": [{"rate": 1}], "vat_bp": 0}
    return [("recharge", lp.recharge_message(credit, target.meter_no, guessed)),
            ("tariff", lp.tariff_message(tariff, target.meter_no, guessed)),
            ("sync", lp.sync_message(500, target.meter_no, guessed)),
            ("recharge", recorded)]


async def test_the_firmware_meter_credits_nothing_forged_by_a_login_or_by_the_broker(
        rig, tmp_path):
    fake = await rig.meter("MTRHF01", connect=False)
    other = await rig.meter("MTRHF02")
    await rig.pay(other.meter_no, "QKO0000001")  # the recharge whose signed copy is replayed
    assert await eventually(lambda: other.balance == 10000)
    await _as_its_own_login(rig, fake, "recharge", {
        "v": 1, "cmd": "recharge", "meter": fake.meter_no, "id": "SELF1", "seq": 1,
        "amount_cents": 100000, "source": "cloud"})
    app, link, client = firmware_meter(str(tmp_path), rig, fake)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.up.wait(), 10)
        for kind, payload in _forgeries(fake, other):
            await rig.bridge.publish("meters/%s/%s" % (fake.meter_no, kind), payload)
        assert await eventually(lambda: link.refused == 4)
        assert await rig.refused_publishes() >= 1  # the self-credit: stopped at the broker
        assert app.ledger.balance == 0 and not app.board.relay.is_closed()
        assert app.recharger.floor("cloud") == 0 and app.biller.tariff.version == 1
        # still connected, never reconnected, and a real payment still closes the relay
        connects = client.connects
        await rig.pay(fake.meter_no, "QKH0000001", "500.00")
        assert await eventually(lambda: app.board.relay.is_closed())
        assert app.ledger.balance == 50000 and client.connects == connects
        assert link.refused == 4 and link.malformed == 0  # nothing else reached it
    finally:
        await client.stop()
        await asyncio.gather(task, return_exceptions=True)
