"""Several cloud instances on one broker, the parts one process can show: the share group's
settings (refused with the in-process amqtt broker), shared subscriptions, a bridge login per
instance in mosquitto's ACL and password file, the redeliver lease that finds a recharge no
live instance was told about, and a meter's statuses kept in the order they arrived."""

import json
import os
import subprocess
import sys

import pytest

from link_rig import ROOT, eventually

from cloud.callbacks import normalise_meter_no
from cloud.link import mosquitto as mosq
from cloud.link.accounts import BRIDGE_USERNAME, bridge_logins, is_bridge_login
from cloud.link.mqtt_client import METER_TOPICS, subscriptions
from cloud.link.settings import BrokerConfigError, link_settings


def test_a_share_group_needs_an_external_broker_and_says_why():
    with pytest.raises(BrokerConfigError, match="amqtt.*no shared subscriptions"):
        link_settings({"MITA_MQTT_SHARE_GROUP": "mita"})
    settings = link_settings({"MITA_MQTT_SHARE_GROUP": "mita",
                              "MITA_MQTT_URL": "mqtt://mita-bridge-1:pw@127.0.0.1:1883",
                              "MITA_MQTT_SESSION_EXPIRY_S": "60"})
    assert (settings.share_group, settings.session_expiry_s) == ("mita", 60)
    assert link_settings({}).share_group == ""
    for bad in ("a/b", "m+", "#", "two words"):
        with pytest.raises(BrokerConfigError, match="one word"):
            link_settings({"MITA_MQTT_SHARE_GROUP": bad, "MITA_MQTT_URL": "mqtt://h:1883"})


def test_serve_refuses_to_start_a_second_amqtt_instance(tmp_path):
    env = dict(os.environ, MITA_MQTT_SHARE_GROUP="mita", MITA_MQTT_URL="",
               MITA_SQLITE_PATH=str(tmp_path / "m.sqlite3"))
    done = subprocess.run([sys.executable, "-m", "cloud", "--env-file", "", "serve"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "configuration error: MITA_MQTT_SHARE_GROUP" in done.stderr
    assert "one instance" in done.stderr


def test_subscriptions_go_into_the_share_group():
    assert subscriptions("") == list(METER_TOPICS)
    shared = subscriptions("mita")
    assert shared == ["$share/mita/" + topic for topic in METER_TOPICS]
    assert "$share/mita/meters/+/recharge/ack" in shared


def test_each_instance_has_its_own_bridge_login_that_no_meter_can_have():
    assert bridge_logins(1) == [BRIDGE_USERNAME]
    logins = bridge_logins(3)
    assert logins == ["mita-bridge-1", "mita-bridge-2", "mita-bridge-3"]
    for login in logins + [BRIDGE_USERNAME]:
        assert is_bridge_login(login)
        assert normalise_meter_no(login) != login  # registration cannot make one
    for other in ("MITA0001", "mita-bridge-", "mita-bridge-x", "mita-bridge-1-2", ""):
        assert not is_bridge_login(other)


def test_the_acl_gives_every_instance_login_the_bridge_rule(tmp_path):
    paths = mosq.write_config(str(tmp_path / "m"), 1884, bridge_username=bridge_logins(3))
    acl = open(paths["acl"]).read()
    for login in bridge_logins(3):
        assert "user %s\ntopic readwrite meters/#\n" % login in acl
    assert "user mita-bridge\n" not in acl


class _Store:
    async def list_meters(self):
        return [{"meter_no": "M1"}]

    async def get_device_key(self, meter_no):
        return "dk1"


async def test_an_instance_starting_keeps_the_other_instances_bridge_lines(tmp_path):
    path = str(tmp_path / "passwords")
    await mosq.sync_password_file(_Store(), path, {"mita-bridge-1": "p1"})
    await mosq.sync_password_file(_Store(), path, {"mita-bridge-2": "p2"})
    mosq.add_password(path, "M9", "pw9")  # a registration on a third instance
    await mosq.sync_password_file(_Store(), path, {"mita-bridge-3": "p3"})
    hashes = mosq.read_password_file(path)
    assert sorted(hashes) == ["M1", "mita-bridge-1", "mita-bridge-2", "mita-bridge-3"]
    for n in (1, 2, 3):
        assert mosq.check_password(hashes["mita-bridge-%d" % n], "p%d" % n)


async def test_a_recharge_no_live_instance_was_told_of_is_found_by_the_lease_holder(
        rig, monkeypatch):
    meter = await rig.meter()
    # Another instance records the payment and dies before its delivery pass: this bridge
    # is never kicked, the recharge waits in the store.
    monkeypatch.setattr(rig.bridge, "kick", lambda meter_no: None)
    await rig.pay(meter.meter_no, "QKS0000001")
    monkeypatch.undo()
    await rig.bridge.resend_pass()
    assert not await eventually(lambda: meter.received("recharge"), 0.3)
    lease = rig.bridge.store.acquire_lease
    # While another live instance holds the lease, it scans, not this one.
    assert await lease("redeliver", "elsewhere", 60000, rig.bridge._now_ms())
    assert await rig.bridge.shared_scan() is False
    await rig.bridge.resend_pass()
    assert not await eventually(lambda: meter.received("recharge"), 0.3)
    # Its holder gone (the lease ran out): this instance takes it and delivers.
    clock = rig.bridge.clock
    rig.bridge.clock = lambda: clock() + 120
    assert await rig.bridge.shared_scan() is True
    await rig.bridge.resend_pass()
    assert await eventually(lambda: meter.balance == 10000)
    assert meter.recharger.applied_count == 1


async def test_in_a_share_group_a_status_that_arrived_earlier_never_overwrites_a_later(rig):
    meter = await rig.meter()
    rig.bridge.broker["share_group"] = "mita"  # how the bridge handles, not what it subscribes
    topic = "meters/%s/status" % meter.meter_no
    online = json.dumps({"v": 1, "state": "online", "load_connected": False})
    will = json.dumps({"v": 1, "state": "offline", "reason": "connection_lost"})
    now = rig.bridge._now_ms()
    # The will arrived first at one instance, the online status after it at another, and the
    # other instance wrote first.
    await rig.bridge.handle(topic, online, now + 2000)
    await rig.bridge.handle(topic, will, now + 1000)
    stored = await rig.store.get_meter(meter.meter_no)
    assert stored["status"]["state"] == "online"
    assert not stored["alerts"].get("connection_lost")
    assert rig.bridge.counters["status_stale"] == 1
    # One instance alone handles a meter's messages in order: each is written as it comes.
    del rig.bridge.broker["share_group"]
    await rig.bridge.handle(topic, will, now + 500)
    assert (await rig.store.get_meter(meter.meter_no))["status"]["state"] == "offline"
