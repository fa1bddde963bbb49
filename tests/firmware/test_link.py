# micropython-heap: 224k (the whole app, the MQTT client and asyncio: bytecode in the heap)
# The meter's side of the protocol (meter.link) on a real MeterApp with fake hardware and a
# recording stand-in for the MQTT client: what goes out, what comes in, what is refused.
import json

from meter import config as meter_config
from meter.app import MeterApp
from meter.command_auth import command_key, sign
from meter.history import HistoryLog
from meter.link import MeterLink, decode, make_link
from meter.storage import StateStore
from support import tmpdir
from appfakes import FakeBoard, ManualClock

P = "meters/MTR-L1/"
DEVICE_KEY = "dk_link_test"
KEY = command_key(DEVICE_KEY, "MTR-L1")


def signed(topic, payload, meter="MTR-L1", key=KEY):
    """What the cloud sends: the JSON object with its command and meter named, signed with the
    meter's command key. Anything else is signed as it is (garbage from a signing cloud)."""
    try:
        msg = json.loads(payload)
    except Exception:
        msg = None
    if type(msg) is dict:
        msg["cmd"] = topic[len(P):]
        msg["meter"] = meter
        payload = json.dumps(msg).encode()
    return sign(key, payload)


def send(link, kind, payload):
    link.on_message(P + kind, signed(P + kind, payload))


class RecordingClient:
    """What MQTTClient.publish would have queued, in order."""

    def __init__(self):
        self.out = []
        self.connected = True
        self.dropped = 0
        self.oversized = 0
        self.json_overflows = 0

    def publish(self, topic, payload, qos=0, retain=False, first=False):
        # the link hands over dicts (the client writes their JSON as it sends them): a round
        # trip through JSON here, as the cloud would read it
        if type(payload) is dict:
            payload = json.dumps(payload)
        item = (topic, json.loads(payload), qos, retain)
        if first:
            self.out.insert(0, item)
        else:
            self.out.append(item)

    def take(self, sub=None):
        got = [m for m in self.out if sub is None or m[0] == P + sub]
        self.out = [m for m in self.out if m not in got]
        return got


def make(name, history=True, balance=5000, fail_persist=False):
    cfg, _ = meter_config.from_dict({
        "meter_id": "MTR-L1", "initial_balance_cents": balance, "key": DEVICE_KEY,
        "tariff": {"version": 1, "bands": [{"rate": 2500}], "vat_bp": 0},
        "thresholds": {"low_cents": 2000, "critical_cents": 500},
        "policy": {"min_switch_s": 0}})
    root = tmpdir(name)
    clock = ManualClock(1767225600)  # 2026-01-01 00:00 UTC = 03:00 local
    app = MeterApp(cfg, StateStore(root), clock)
    board = FakeBoard(clock, app.relay_at_boot())
    app.attach(board)
    app.tick()  # the first tick closes the relay on credit
    log = HistoryLog(root, 10800) if history else None
    link = MeterLink(app, log, telemetry_s=60, min_gap_s=2)
    client = RecordingClient()
    link.attach(client)
    return app, board, link, client


def recharge(seq, amount=10000, **extra):
    msg = {"v": 1, "id": "R%d" % seq, "seq": seq, "amount_cents": amount, "source": "cloud"}
    for k in extra:
        msg[k] = extra[k]
    return json.dumps(msg).encode()


def test_connect_publishes_retained_status_first_then_telemetry():
    app, board, link, client = make("link_connect")
    client.publish(P + "telemetry", "{}")  # something already waiting
    link.on_connect()
    topic, status, qos, retain = client.out[0]
    assert (topic, qos, retain) == (P + "status", 1, True)
    assert status["state"] == "online" and status["v"] == 1
    assert status["mqtt_status"] == "connected" and status["load_connected"] is True
    assert status["boot"] == "fresh" and status["firmware"]
    tele = client.take("telemetry")[-1][1]
    assert tele["balance_cents"] == 5000 and tele["alerts"]["low_balance"] is False
    assert tele["counters"] == {"malformed": 0, "refused": 0, "oversized": 0, "dropped": 0,
                                "history_dropped": 0, "json_overflows": 0}
    app.tick()
    assert app.snapshot["online"] is True


def test_will_is_a_retained_offline_status():
    app, board, link, client = make("link_will", history=False)
    topic, payload, qos, retain = link.will()
    assert (topic, qos, retain) == (P + "status", 1, True)
    assert json.loads(payload) == {"v": 1, "state": "offline", "reason": "connection_lost"}


def test_recharge_is_applied_persisted_then_acknowledged_once():
    app, board, link, client = make("link_recharge", balance=0)
    send(link, "recharge", recharge(1, 20000))
    ack = client.take("recharge/ack")
    assert len(ack) == 1 and ack[0][2] == 1
    assert ack[0][1]["status"] == "applied" and ack[0][1]["seq"] == 1
    assert ack[0][1]["balance_cents"] == 20000
    # It was on flash before the ack: a fresh app from the same store has it.
    assert app.store.load()["ledger"]["balance_cents"] == 20000
    send(link, "recharge", recharge(1, 20000))  # re-delivered by the broker
    ack = client.take("recharge/ack")[0][1]
    assert (ack["status"], ack["reason"]) == ("duplicate", "already_applied")
    assert app.ledger.balance == 20000


def test_recharges_out_of_order_and_with_unknown_fields_apply_once_each():
    app, board, link, client = make("link_order", balance=0)
    for seq in (3, 1, 2, 3, 1):
        send(link, "recharge", recharge(seq, 100, extra_field={"x": 1}))
    statuses = [m[1]["status"] for m in client.take("recharge/ack")]
    assert statuses == ["applied", "applied", "applied", "duplicate", "duplicate"]
    assert app.ledger.balance == 300


def test_bad_recharges_are_rejected_with_a_reason_and_change_nothing():
    app, board, link, client = make("link_bad", balance=1000)
    send(link, "recharge", recharge(1, 0))
    send(link, "recharge", recharge(2, True))
    send(link, "recharge", recharge(3, 100, source="token"))
    acks = [(m[1]["seq"], m[1]["status"], m[1]["reason"]) for m in client.take("recharge/ack")]
    assert acks == [(1, "rejected", "zero"), (2, "rejected", "bad_amount"),
                    (3, "rejected", "bad_source")]
    assert app.ledger.balance == 1000 and not app.recharger.seen("token", 3)


def test_commands_not_signed_by_the_cloud_for_this_meter_are_refused_and_counted():
    app, board, link, client = make("link_forged", balance=1000)
    good = recharge(1, 100000)
    other_key = command_key("dk_other_meter", "MTR-L2")
    forged = [
        good,                                                    # unsigned: the self-credit
        signed(P + "recharge", good, key=command_key("dk_guess", "MTR-L1")),  # wrong key
        signed(P + "recharge", good, meter="MTR-L2", key=other_key),  # another meter's, replayed
        signed(P + "recharge", good, meter="MTR-L2"),            # our key, addressed elsewhere
        signed(P + "tariff", good),                              # signed as another command
        signed(P + "recharge", good)[:-1],                       # signature cut short
        signed(P + "recharge", good)[:-1] + b"0",                # one digit changed
        signed(P + "recharge", good).replace(b"100000", b"900000"),  # amount changed
    ]
    for payload in forged:
        link.on_message(P + "recharge", payload)
    link.on_message(P + "sync", b'{"v": 1, "cmd": "sync", "meter": "MTR-L1", "recharge_floor": 9}')
    link.on_message(P + "tariff", signed(P + "tariff", json.dumps(
        {"v": 1, "tariff": {"version": 9, "bands": [{"rate": 1}], "vat_bp": 0}}).encode(),
        key=other_key))
    assert link.refused == len(forged) + 2 and link.malformed == 0
    assert client.out == []  # never acknowledged
    assert app.ledger.balance == 1000 and app.recharger.floor("cloud") == 0
    assert app.biller.tariff.version == 1
    send(link, "recharge", good)  # the real one, signed by the cloud, still applies
    assert client.take("recharge/ack")[0][1]["status"] == "applied"
    assert app.ledger.balance == 101000


def test_a_meter_without_a_key_refuses_every_command():
    app, board, link, client = make("link_keyless", balance=0)
    link.command_key = command_key("", "MTR-L1")  # as provisioned with "key": ""
    send(link, "recharge", recharge(1, 500))
    assert link.refused == 1 and app.ledger.balance == 0 and client.out == []


def test_garbage_is_counted_and_dropped_without_an_ack():
    app, board, link, client = make("link_garbage", balance=1000)
    junk = [b"", b"\xff\xfe\x00", b"not json", b"[1,2]", b'"text"', b'{"seq": 1}',
            b'{"v": 2, "seq": 1, "id": "x", "amount_cents": 5, "source": "cloud"}',
            b'{"v": true, "seq": 1}', b'{"v": 1, "seq": "1"}', b'{"v": 1}']
    for payload in junk:
        send(link, "recharge", payload)
    send(link, "nonsense", b'{"v": 1}')
    assert link.malformed == len(junk) + 1
    assert client.out == [] and app.ledger.balance == 1000


def test_power_cut_during_the_write_means_no_ack_and_the_redelivery_applies():
    app, board, link, client = make("link_cut", balance=0)

    def failing_save(state):
        raise OSError(28)  # the flash write did not complete

    real_save = app.store.save
    app.store.save = failing_save
    send(link, "recharge", recharge(1, 500))
    ack = client.take("recharge/ack")[0][1]
    assert (ack["status"], ack["reason"]) == ("rejected", "storage_error")
    assert app.ledger.balance == 0
    app.store.save = real_save
    send(link, "recharge", recharge(1, 500))
    assert client.take("recharge/ack")[0][1]["status"] == "applied"
    assert app.ledger.balance == 500


def test_a_recharge_that_closes_the_relay_is_one_flash_write_and_the_relay_moves_after_it():
    app, board, link, client = make("link_one_write", balance=0)
    assert not board.relay.is_closed()  # no credit: open
    writes = []
    real_save = app.store.save

    def counting_save(state):
        writes.append((state["relay"], board.relay.is_closed()))
        real_save(state)

    app.store.save = counting_save
    send(link, "recharge", recharge(1, 20000))
    assert client.take("recharge/ack")[0][1]["status"] == "applied"
    # one write holds the credit and the closed relay; the relay was still open during it
    assert writes == [(True, False)]
    assert board.relay.is_closed()
    assert app.store.load()["relay"] is True and app.store.load()["ledger"]["balance_cents"] == 20000


def test_a_recharge_whose_write_fails_never_closes_the_relay():
    app, board, link, client = make("link_no_close", balance=0)

    def failing_save(state):
        raise OSError(28)

    app.store.save = failing_save
    send(link, "recharge", recharge(1, 20000))
    assert client.take("recharge/ack")[0][1]["reason"] == "storage_error"
    assert not board.relay.is_closed() and app.ledger.balance == 0
    assert app.state()["relay"] is False  # the relay the next write records is the real one


def test_a_recharge_without_an_int_seq_is_dropped_counted_and_changes_nothing():
    app, board, link, client = make("link_no_seq", balance=0)
    for seq in ('"1"', "null", "1.0"):
        send(link, "recharge", ('{"v": 1, "id": "R1", "seq": %s, "amount_cents": 100,'
                            ' "source": "cloud"}' % seq).encode())
    assert link.malformed == 3 and client.take("recharge/ack") == []
    assert app.ledger.balance == 0 and app.recharger.floor("cloud") == 0


def test_a_task_that_dies_is_restarted_and_counted_one_that_ends_is_not():
    import asyncio
    from meter.link import supervise
    runs = []

    async def flaky():
        runs.append(1)
        if len(runs) < 3:
            raise OSError("wifi driver")

    async def main():
        restarts = {}
        await supervise("wifi", flaky, restarts, pause_s=0)
        return restarts

    assert asyncio.run(main()) == {"wifi": 2} and len(runs) == 3


def test_tariff_update_is_taken_once_and_acknowledged():
    app, board, link, client = make("link_tariff")
    tariff = {"version": 2, "bands": [{"rate": 3000}], "vat_bp": 1600}
    send(link, "tariff", json.dumps({"v": 1, "tariff": tariff}).encode())
    send(link, "tariff", json.dumps({"v": 1, "tariff": tariff}).encode())
    acks = [m[1] for m in client.take("tariff/ack")]
    assert [(a["version"], a["ok"], a["reason"]) for a in acks] == [
        (2, True, "ok"), (2, False, "not_newer")]
    assert app.biller.tariff.version == 2
    send(link, "tariff", b'{"v": 1, "tariff": [1]}')
    send(link, "tariff", b'{"v": 1, "tariff": {"version": 3, "bands": "x"}}')
    assert link.malformed == 1
    assert client.take("tariff/ack")[0][1]["ok"] is False


def test_sync_raises_the_floor_only_upwards_and_persists():
    app, board, link, client = make("link_sync", balance=0)
    send(link, "sync", b'{"v": 1, "recharge_floor": 40}')
    assert app.recharger.floor("cloud") == 40
    assert app.store.load()["recharge"]["cloud"][0] == 40
    send(link, "sync", b'{"v": 1, "recharge_floor": 10}')
    assert app.recharger.floor("cloud") == 40
    send(link, "recharge", recharge(40, 100))
    assert client.take("recharge/ack")[0][1]["status"] == "duplicate"
    for bad in (b'{"v": 1, "recharge_floor": -1}', b'{"v": 1, "recharge_floor": true}',
                b'{"v": 1, "recharge_floor": 4294967296}', b'{"v": 1}'):
        send(link, "sync", bad)
    assert link.malformed == 4 and app.recharger.floor("cloud") == 40


def run_seconds(app, link, seconds, power_w=None):
    if power_w is not None:
        app.board.sensor.power_w = power_w
    for _ in range(seconds):
        app.clock.advance(1000)
        app.tick()
        link.tick()


def test_telemetry_is_periodic_and_immediate_on_an_alert_but_not_too_often():
    app, board, link, client = make("link_tele", history=False, balance=2050)
    link.on_connect()
    client.take()
    run_seconds(app, link, 59, 0)
    assert client.take("telemetry") == []
    run_seconds(app, link, 1)
    assert len(client.take("telemetry")) == 1
    run_seconds(app, link, 5, 3600)  # 1 Wh a second at KES 25/kWh: 2.5 cents a second
    run_seconds(app, link, 30)
    sent = [m[1] for m in client.take("telemetry")]
    assert len(sent) == 1 and sent[0]["alerts"]["low_balance"] is True


def test_status_follows_the_relay():
    app, board, link, client = make("link_status", history=False, balance=10)
    link.on_connect()
    client.take()
    run_seconds(app, link, 30, 3600)  # credit runs out: the relay opens
    statuses = [m[1] for m in client.take("status")]
    assert statuses and statuses[-1]["load_connected"] is False
    assert board.relay.is_closed() is False


def test_hourly_history_is_uploaded_in_order_and_dropped_on_ack():
    app, board, link, client = make("link_hist", balance=10000000)
    link.on_connect()
    client.take()
    client.connected = False  # offline for three hours: records pile up in flash
    for _ in range(3):
        run_seconds(app, link, 3600, 1000)
    assert client.take("history") == [] and link.history.unacked() == 3
    client.connected = True
    link.on_connect()
    hist = [m[1] for m in client.take("history")]
    assert [h["seq"] for h in hist] == [1, 2, 3]
    assert [h["hour"] for h in hist] == ["03", "04", "05"] and hist[0]["date"] == "2026-01-01"
    assert all(h["wh"] > 0 and h["cost_cents"] > 0 for h in hist)
    assert sum(h["wh"] for h in hist) <= app.energy.total_wh
    for seq in (2, 1, 3):
        send(link, "history/ack", json.dumps({"v": 1, "seq": seq}).encode())
    assert link.history.unacked() == 0
    link.on_connect()
    assert client.take("history") == []


def test_history_upload_keeps_at_most_eight_in_flight():
    app, board, link, client = make("link_window", balance=10000000)
    client.connected = False
    for _ in range(12):
        run_seconds(app, link, 3600, 500)
    client.connected = True
    link.on_connect()
    assert [m[1]["seq"] for m in client.take("history")] == list(range(1, 9))
    send(link, "history/ack", b'{"v": 1, "seq": 1}')
    assert [m[1]["seq"] for m in client.take("history")] == [9]


def test_decode_accepts_only_versioned_objects():
    assert decode(b'{"v": 1, "x": 2}') == {"v": 1, "x": 2}
    for bad in (b"", b"{", b"1", b"null", b'{"v": 0}', b'{"v": "1"}', b'{"v": 1.0}'):
        assert decode(bad) is None


def test_make_link_builds_the_client_from_config():
    app, board, link, client = make("link_make", history=False)
    link2, mqtt = make_link(app, history_root=None)
    assert mqtt.client_id == "MTR-L1" and mqtt.user == "MTR-L1" and mqtt.clean_session is False
    assert mqtt.will[0] == P + "status" and mqtt.will[3] is True
    assert sorted(t for t, q in mqtt.subscriptions) == sorted(
        [P + "recharge", P + "tariff", P + "sync", P + "history/ack"])
    assert mqtt.on_message == link2.on_message
    # the client keeps what every reconnect needs; the config's copy is released
    assert "mqtt" not in app.config and (mqtt.host, mqtt.port) == ("", 1883)
