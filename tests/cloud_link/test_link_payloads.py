"""The link's pure parts: payload parsing never raises anything but its own errors, the sync
floor, and mosquitto's files as cloud.link.mosquitto writes them."""

import json
import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from cloud.link import payloads as lp
from cloud.link import mosquitto as mosq
from cloud.link.accounts import (METER_PUBLISHES, METER_SUBSCRIBES, client_id_allowed,
                                 meter_broker_password, topic_allowed)
from cloud.link.settings import BrokerConfigError, link_settings, parse_mqtt_url

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def _containers(kids):
    return st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=5)


def _as_json(value):
    return json.dumps(value).encode()


# Named functions, not lambdas: hypothesis describes a lambda by parsing this file's source,
# and on CPython 3.11 a collection in the middle of that parse (a finalizer that formats a
# traceback) raises "AST constructor recursion depth mismatch" (tools/source_tree.py).
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                              | st.text(max_size=10), _containers,
                              max_leaves=12).map(_as_json)))
def test_any_payload_parses_or_is_refused_with_the_links_own_errors(payload):
    try:
        msg = lp.decode(payload)
    except lp.Malformed:
        return
    for parse in (lp.parse_status, lp.parse_telemetry, lp.parse_history, lp.parse_recharge_ack,
                  lp.parse_tariff_ack):
        try:
            parse(msg)
        except (lp.Malformed, lp.BadRecord):
            pass


def test_decode_refuses_what_the_protocol_calls_malformed():
    for raw in (b"", b"null", b"[]", b'"x"', b'{"v": "1"}', b'{"v": 1.0}', b'{"v": true}',
                b'{"v": 0}', b'{"v": 2}', b"\xff"):
        with pytest.raises(lp.Malformed):
            lp.decode(raw)
    with pytest.raises(lp.Oversized):
        lp.decode(b'{"v": 1, "x": "' + b"a" * 4096 + b'"}')
    assert lp.decode(b'{"v": 1, "future_field": [1]}') == {"v": 1, "future_field": [1]}


def test_amounts_are_never_floats_or_booleans():
    with pytest.raises(lp.Malformed):
        lp.parse_telemetry({"v": 1, "balance_cents": 100.0})
    with pytest.raises(lp.Malformed):
        lp.parse_recharge_ack({"v": 1, "seq": True, "status": "applied"})
    with pytest.raises(lp.BadRecord):
        lp.parse_history({"v": 1, "seq": 3, "date": "2026-11-26", "hour": "01", "wh": True,
                          "cost_cents": 1})


def test_split_topic():
    assert lp.split_topic("meters/M1/recharge/ack") == ("M1", "recharge/ack")
    for bad in ("meters//status", "meters/M1", "other/M1/status"):
        with pytest.raises(lp.Malformed):
            lp.split_topic(bad)


def _r(seq, status):
    return {"seq": seq, "status": status}


def test_floor_stops_at_the_first_seq_not_answered_for_good():
    recharges = [_r(1, "delivered"), _r(2, "rejected"), _r(3, "pending"), _r(4, "delivered")]
    assert lp.recharge_floor(recharges, 4) == 2
    assert lp.recharge_floor([], 0) == 0
    assert lp.recharge_floor([_r(1, "pending")], 1) == 0


def test_void_seqs_let_the_floor_pass_gaps_but_never_a_pending_recharge():
    recharges = [_r(1, "delivered"), _r(3, "delivered"), _r(5, "pending")]
    assert lp.missing_seqs(recharges, 6) == [2, 4, 6]
    assert lp.recharge_floor(recharges, 6) == 1
    assert lp.recharge_floor(recharges, 6, {2}) == 3
    assert lp.recharge_floor(recharges, 6, {2, 4}) == 4
    assert lp.recharge_floor(recharges, 6, {2, 4, 5, 6}) == 4  # 5 exists: never void


def test_a_sync_goes_after_online_and_past_what_the_meter_did_not_apply_only():
    recharges = [_r(1, "delivered"), _r(2, "delivered"), _r(3, "rejected"), _r(5, "delivered")]
    assert lp.floor_needs_sync(recharges, None, 2)  # after every online
    assert not lp.floor_needs_sync(recharges, None, 0)  # nothing to say yet
    assert not lp.floor_needs_sync(recharges, 0, 2)  # its own acks moved the meter's floor
    assert not lp.floor_needs_sync(recharges, 2, 2)
    assert lp.floor_needs_sync(recharges, 2, 3)  # past a rejection: the meter's floor is stuck
    assert lp.floor_needs_sync(recharges, 3, 5)  # past seq 4, void
    assert not lp.floor_needs_sync(recharges, 5, 5)


def test_a_missing_seq_turns_void_only_after_waiting_and_a_late_recharge_is_reported():
    voids = lp.VoidSeqs(after_s=60)
    recharges = [_r(1, "delivered"), _r(3, "pending")]
    assert voids.update("M1", recharges, 4, now=0) == (set(), [], [])
    assert voids.waiting("M1")
    assert voids.update("M1", recharges, 4, now=59) == (set(), [], [])
    assert voids.update("M1", recharges, 4, now=60) == ({2, 4}, [2, 4], [])
    assert not voids.waiting("M1")
    assert voids.update("M1", recharges, 4, now=61) == ({2, 4}, [], [])
    # seq 4's writer was only slow: its recharge appears after all
    assert voids.update("M1", recharges + [_r(4, "pending")], 4, now=62) == ({2}, [], [4])
    assert voids.update("M2", [], 0, now=0) == (set(), [], [])


def test_messages_the_cloud_sends_are_signed_for_one_meter_and_one_command():
    key = lp.command_key("dk_secret", "M1")
    recharge = {"meter_no": "M1", "seq": 17, "id": "QKX1234567", "amount_cents": 50000,
                "status": "pending", "source": "cloud"}

    def body(payload, with_key=key):
        opened = lp.opened(with_key, payload)
        return json.loads(opened) if opened is not None else None
    sent = lp.recharge_message(recharge, "M1", key)
    assert body(sent) == {"v": 1, "cmd": "recharge", "meter": "M1", "id": "QKX1234567",
                          "seq": 17, "amount_cents": 50000, "source": "cloud"}
    # a payment with a token: its count travels signed, as firmware/meter/recharge.py reads it
    with_token = lp.recharge_message(dict(recharge, token_count=6), "M1", key)
    assert body(with_token)["token_count"] == 6
    assert "token_count" not in body(lp.recharge_message(dict(recharge, token_count=None),
                                                         "M1", key))
    assert body(lp.sync_message(16, "M1", key)) == {"v": 1, "cmd": "sync", "meter": "M1",
                                                     "recharge_floor": 16}
    assert body(lp.history_ack(412, "M1", key)) == {"v": 1, "cmd": "history/ack",
                                                     "meter": "M1", "seq": 412}
    assert body(lp.history_ack(7, "M1", key, ok=False))["ok"] is False
    assert body(lp.tariff_message({"version": 2}, "M1", key))["tariff"] == {"version": 2}
    # the key is the meter's own: another meter's key, or another device key, opens nothing
    assert body(sent, lp.command_key("dk_secret", "M2")) is None
    assert body(sent, lp.command_key("dk_other", "M1")) is None
    assert lp.command_key("dk_secret", "M1") == key and len(key) == 32
    assert lp.opened(key, sent.replace(b"50000", b"90000")) is None
    assert lp.opened(key, sent.split(b"\n")[0]) is None  # the signature left off
    assert lp.opened(b"", sent) is None  # no key, nothing opens
    assert b"dk_secret" not in sent


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_no_bytes_open_without_the_key(payload):
    key = lp.command_key("dk_secret", "M1")
    assert lp.opened(key, payload) is None
    assert lp.opened(key, payload + b"\n" + b"0" * 64) is None


def test_acl_rule_is_split_by_direction():
    for kind in ("status", "telemetry", "history", "recharge/ack", "tariff/ack"):
        assert topic_allowed("M1", "meters/M1/" + kind, "bridge", "publish")
        assert not topic_allowed("M1", "meters/M1/" + kind, "bridge", "subscribe")
    for kind in ("recharge", "tariff", "sync", "history/ack"):
        # a meter's own login can never publish a command to itself (self-credit)
        assert not topic_allowed("M1", "meters/M1/" + kind, "bridge", "publish")
        assert topic_allowed("M1", "meters/M1/" + kind, "bridge", "subscribe")
    for action in ("publish", "subscribe"):
        assert not topic_allowed("M1", "meters/M2/status", "bridge", action)
        assert not topic_allowed("M1", "meters/M2/recharge", "bridge", action)
        assert not topic_allowed("M1", "meters/M1", "bridge", action)
        assert not topic_allowed("M1", "meters/M1/#", "bridge", action)
        assert not topic_allowed("M1", "meters/+/recharge", "bridge", action)
        assert not topic_allowed("M1", "meters/#", "bridge", action)
        assert not topic_allowed("M1", "meters/M1/recharge/extra", "bridge", action)
        assert not topic_allowed("+", "meters/+/status", "bridge", action)
        assert not topic_allowed(None, "meters/None/status", "bridge", action)
        assert topic_allowed("bridge", "meters/M2/recharge", "bridge", action)


def test_client_ids_are_bound_to_logins():
    assert client_id_allowed("MITA0001", "MITA0001")
    assert client_id_allowed("mita-bridge", "mita-bridge")
    assert not client_id_allowed("MITA0002", "MITA0001")
    assert not client_id_allowed("MITA0002", "mita-bridge")
    assert not client_id_allowed("MITA0002", "")
    assert not client_id_allowed(None, None)


def test_broker_passwords_are_derived_per_meter_and_never_the_device_key():
    a = meter_broker_password("M1", "dk_secret")
    assert a == meter_broker_password("M1", "dk_secret")
    assert a != meter_broker_password("M2", "dk_secret")
    assert a != meter_broker_password("M1", "dk_other")
    assert "dk_secret" not in a and len(a) == 64


def test_settings_from_the_environment():
    s = link_settings({})
    assert (s.enabled, s.embedded, s.port, s.bind_host) == (True, True, 1883, "127.0.0.1")
    s = link_settings({"MITA_MQTT_URL": "mqtts://b:p%40ss@broker.example:8884",
                       "MITA_MQTT_RESEND_S": "5", "MITA_MQTT": "off"})
    assert not s.enabled and not s.embedded and s.resend_every_s == 5
    assert parse_mqtt_url(s.url) == {"host": "broker.example", "port": 8884, "tls": True,
                                     "username": "b", "password": "p@ss"}
    for bad in ({"MITA_MQTT_URL": "http://x"}, {"MITA_MQTT_PORT": "abc"},
                {"MITA_MQTT_RESEND_S": "-1"}, {"MITA_MQTT_URL": "mqtt://h:99999"}):
        with pytest.raises(BrokerConfigError):
            link_settings(bad)


def test_password_hashes_are_mosquittos_own_format(tmp_path):
    line = mosq.hash_password("s3cret", salt=b"0123456789ab")
    assert line.startswith("$7$101$MDEyMzQ1Njc4OWFi$")
    assert mosq.check_password(line, "s3cret") and not mosq.check_password(line, "s3cre")
    if not os.path.exists(MOSQUITTO_PASSWD):
        pytest.skip("mosquitto_passwd is not installed; CI installs it")
    path = tmp_path / "pw"
    path.write_text("")
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(path), "alice", "s3cret"], check=True)
    theirs = mosq.read_password_file(str(path))["alice"]
    assert mosq.check_password(theirs, "s3cret")


class _Store:
    def __init__(self, keys):
        self.keys = keys

    async def list_meters(self):
        return [{"meter_no": m} for m in self.keys]

    async def get_device_key(self, meter_no):
        return self.keys[meter_no]


async def test_password_file_sync_writes_every_meter_and_leaves_an_unchanged_file_alone(tmp_path):
    path = str(tmp_path / "passwords")
    store = _Store({"M1": "dk1", "M2": "dk2"})
    assert await mosq.sync_password_file(store, path, {"mita-bridge": "bp"}) == 3
    first = open(path).read()
    hashes = mosq.read_password_file(path)
    assert mosq.check_password(hashes["M1"], meter_broker_password("M1", "dk1"))
    assert mosq.check_password(hashes["mita-bridge"], "bp")
    mtime = os.stat(path).st_mtime_ns
    await mosq.sync_password_file(store, path, {"mita-bridge": "bp"})
    assert open(path).read() == first and os.stat(path).st_mtime_ns == mtime
    mosq.add_password(path, "M3", "pw3")
    mosq.add_password(path, "M1", "new")  # replaces, never duplicates
    hashes = mosq.read_password_file(path)
    assert sorted(hashes) == ["M1", "M2", "M3", "mita-bridge"]
    assert mosq.check_password(hashes["M1"], "new")
    with pytest.raises(mosq.MosquittoError):
        mosq.add_password(path, "bad:name", "x")


def test_config_and_acl_text(tmp_path):
    paths = mosq.write_config(str(tmp_path / "m"), 1884)
    conf = open(paths["mosquitto.conf"]).read()
    assert "listener 1884 127.0.0.1\n" in conf and "allow_anonymous false\n" in conf
    assert "password_file %s\n" % paths["passwords"] in conf
    assert "acl_file %s\n" % paths["acl"] in conf
    assert "use_username_as_clientid true\n" in conf
    acl = open(paths["acl"]).read().splitlines()
    assert acl[:3] == ["user mita-bridge", "topic readwrite meters/#", ""]
    # the same table as the in-process broker's rule, and nothing more
    assert sorted(acl[3:]) == sorted(["pattern write meters/%u/" + k for k in METER_PUBLISHES]
                                     + ["pattern read meters/%u/" + k for k in METER_SUBSCRIBES])
    assert mosq.reload("") is False
    assert mosq.reload(str(tmp_path / "no-such-pid")) is False


def test_a_taken_port_stops_the_start_with_a_clear_error_and_off_means_no_link(tmp_path):
    import socket
    from cloud.app import create_app
    from cloud.config import Config
    from cloud.link.broker import BrokerStartError
    from cloud.link.settings import LinkSettings
    config = Config(sqlite_path=str(tmp_path / "m.sqlite3"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.link = LinkSettings(port=port)
        with pytest.raises(BrokerStartError, match="MITA_MQTT_PORT"):
            create_app(config)
        config.link = LinkSettings(port=port, enabled=False)
        create_app(config)  # off: the taken port is never tried


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=150), st.binary(max_size=300))
def test_the_firmwares_hmac_is_the_standard_one(key, msg):
    import hashlib
    import hmac
    from cloud.firmware_source import load_firmware_module
    mine = load_firmware_module("command_auth")["hmac_sha256"]
    assert mine(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()
