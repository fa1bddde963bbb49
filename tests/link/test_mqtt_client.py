"""The firmware's MQTT client (meter.mqtt) under CPython against real brokers: mosquitto and
amqtt. The same client under the MicroPython unix port is in test_mqtt_micropython.py."""
import asyncio
import json

import pytest

from meter.mqtt import MQTTClient
from meter import mqtt_packets as pk

TIMEOUT = 10


async def until(predicate, timeout=TIMEOUT):
    """Wait for a condition the broker round trip makes true; polls, never a fixed sleep."""
    async def poll():
        while not predicate():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout)


class Meter:
    """A client plus the messages it received."""

    def __init__(self, broker, user, password, subs=(), **kw):
        self.messages = []
        self.client = MQTTClient(user, broker.host, broker.port, user=user, password=password,
                                 subscriptions=list(subs), on_message=self.got,
                                 keepalive_s=kw.pop("keepalive_s", 30),
                                 backoff_min_ms=kw.pop("backoff_min_ms", 20),
                                 backoff_max_ms=kw.pop("backoff_max_ms", 200), **kw)
        self.task = None

    def got(self, topic, payload, retained):
        self.messages.append((topic, bytes(payload), retained))

    async def start(self, wait=True):
        self.task = asyncio.create_task(self.client.run())
        if wait:
            await asyncio.wait_for(self.client.up.wait(), TIMEOUT)
        return self

    async def stop(self, **kw):
        await self.client.stop(**kw)
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass


@pytest.fixture
async def accounts(any_broker):
    await any_broker.add_user("m1", "pw1")
    await any_broker.add_user("m2", "pw2")
    await any_broker.add_user("cloud", "cpw", superuser=True)
    return any_broker


async def test_connect_publish_and_subscribe_round_trip(accounts):
    cloud = await Meter(accounts, "cloud", "cpw", subs=[("meters/+/telemetry", 1)]).start()
    meter = await Meter(accounts, "m1", "pw1", subs=[("meters/m1/recharge", 1)]).start()
    try:
        meter.client.publish("meters/m1/telemetry", b'{"v":1}', qos=1)
        meter.client.publish("meters/m1/telemetry", b'{"v":1,"n":2}', qos=0)
        await until(lambda: len(cloud.messages) == 2)
        assert [m[1] for m in cloud.messages] == [b'{"v":1}', b'{"v":1,"n":2}']
        await until(lambda: meter.client.pending() == 0)  # the QoS 1 one was PUBACKed
        cloud.client.publish("meters/m1/recharge", b"credit", qos=1)
        await until(lambda: meter.messages)
        assert meter.messages == [("meters/m1/recharge", b"credit", False)]
        assert meter.client.connects == 1 and meter.client.dropped == 0
    finally:
        await meter.stop()
        await cloud.stop()


async def test_qos1_waits_at_the_broker_for_a_persistent_session(accounts):
    meter = await Meter(accounts, "m1", "pw1", subs=[("meters/m1/recharge", 1)]).start()
    await meter.stop()  # clean DISCONNECT, session kept (clean_session = 0)
    cloud = await Meter(accounts, "cloud", "cpw").start()
    try:
        cloud.client.publish("meters/m1/recharge", b"while-away-1", qos=1)
        cloud.client.publish("meters/m1/recharge", b"while-away-2", qos=1)
        await until(lambda: cloud.client.pending() == 0)
        back = Meter(accounts, "m1", "pw1", subs=[("meters/m1/recharge", 1)])
        await back.start()
        await until(lambda: len(back.messages) == 2)
        assert [m[1] for m in back.messages] == [b"while-away-1", b"while-away-2"]
        await back.stop()
    finally:
        await cloud.stop()


async def test_last_will_is_a_retained_offline_status_and_clean_stop_is_not(accounts):
    will = ("meters/m1/status", b'{"v":1,"state":"offline","reason":"connection_lost"}', 1, True)
    meter = await Meter(accounts, "m1", "pw1", will=will).start()
    meter.client.publish("meters/m1/status", b'{"v":1,"state":"online"}', qos=1, retain=True)
    await until(lambda: meter.client.pending() == 0)
    # Cut the TCP connection without DISCONNECT, as a power cut does.
    meter.client._writer.transport.abort()
    meter.task.cancel()
    watcher = await Meter(accounts, "cloud", "cpw", subs=[("meters/m1/status", 1)]).start()
    try:
        await until(lambda: any(b"connection_lost" in m[1] for m in watcher.messages))
    finally:
        await watcher.stop()
        await meter.client.stop()


async def test_broker_restarted_mid_session_client_comes_back_by_itself(accounts):
    meter = await Meter(accounts, "m1", "pw1", subs=[("meters/m1/recharge", 1)]).start()
    try:
        await accounts.restart()
        if accounts.kind == "amqtt":  # its accounts live in the process: add them again
            await accounts.add_user("cloud", "cpw", superuser=True)
        await until(lambda: meter.client.connects >= 2)
        await asyncio.wait_for(meter.client.up.wait(), TIMEOUT)
        cloud = await Meter(accounts, "cloud", "cpw").start()
        cloud.client.publish("meters/m1/recharge", b"after-restart", qos=1)
        await until(lambda: meter.messages)
        assert meter.messages[-1][1] == b"after-restart"
        await cloud.stop()
    finally:
        await meter.stop()


async def test_publishes_queued_while_down_go_out_in_order_after_reconnect(accounts):
    cloud = await Meter(accounts, "cloud", "cpw", subs=[("meters/m1/history", 1)]).start()
    meter = await Meter(accounts, "m1", "pw1").start()
    try:
        meter.client.connected = False  # the send loop keeps running; stop it sending
        for task in meter.client._tasks:
            task.cancel()
        for i in range(3):
            meter.client.publish("meters/m1/history", b"h%d" % i, qos=1)
        # Queue is waiting; now the connection dies and comes back through the one path.
        meter.client.reconnect("test")
        await until(lambda: cloud.messages and len(cloud.messages) == 3)
        assert [m[1] for m in cloud.messages] == [b"h0", b"h1", b"h2"]
        await until(lambda: meter.client.pending() == 0)
    finally:
        await meter.stop()
        await cloud.stop()


async def test_wrong_password_is_refused_and_never_up(accounts):
    meter = await Meter(accounts, "m1", "wrong").start(wait=False)
    try:
        await until(lambda: meter.client.failures >= 1)
        assert not meter.client.up.is_set()
        assert meter.client.connects == 0
        if accounts.kind == "mosquitto":
            assert meter.client.refusal in (4, 5)
    finally:
        await meter.stop()


async def test_a_meter_cannot_publish_under_another_meters_topics(accounts):
    cloud = await Meter(accounts, "cloud", "cpw", subs=[("meters/#", 1)]).start()
    m2 = await Meter(accounts, "m2", "pw2").start()
    try:
        m2.client.publish("meters/m1/recharge/ack", b"forged", qos=1)
        m2.client.publish("meters/m2/telemetry", b"mine", qos=1)
        await until(lambda: any(m[1] == b"mine" for m in cloud.messages))
        await until(lambda: m2.client.pending() == 0)
        assert all(m[1] != b"forged" for m in cloud.messages)
    finally:
        await m2.stop()
        await cloud.stop()


async def test_a_meter_cannot_subscribe_to_another_meters_commands(accounts):
    spy = await Meter(accounts, "m2", "pw2", subs=[("meters/m1/recharge", 1)]).start()
    own = await Meter(accounts, "m1", "pw1", subs=[("meters/m1/recharge", 1)]).start()
    cloud = await Meter(accounts, "cloud", "cpw").start()
    try:
        cloud.client.publish("meters/m1/recharge", b"secret", qos=1)
        await until(lambda: own.messages)
        await until(lambda: cloud.client.pending() == 0)
        assert spy.messages == []
    finally:
        for c in (cloud, own, spy):
            await c.stop()


async def test_oversized_payload_is_dropped_counted_and_the_session_lives(accounts):
    meter = await Meter(accounts, "m1", "pw1", subs=[("meters/m1/recharge", 1)],
                        max_packet=256).start()
    cloud = await Meter(accounts, "cloud", "cpw").start()
    try:
        cloud.client.publish("meters/m1/recharge", b"x" * 5000, qos=1)
        cloud.client.publish("meters/m1/recharge", b"small", qos=1)
        await until(lambda: meter.messages)
        assert meter.messages == [("meters/m1/recharge", b"small", False)]
        assert meter.client.oversized == 1
        assert meter.client.connects == 1
    finally:
        await meter.stop()
        await cloud.stop()


async def test_a_handler_that_raises_is_counted_and_the_session_lives(accounts):
    meter = Meter(accounts, "m1", "pw1", subs=[("meters/m1/recharge", 1)])
    seen = []

    def fragile(topic, payload, retained):
        seen.append(payload)
        json.loads(payload)  # garbage raises

    meter.client.on_message = fragile
    await meter.start()
    cloud = await Meter(accounts, "cloud", "cpw").start()
    try:
        cloud.client.publish("meters/m1/recharge", b"\xff\x00not json", qos=1)
        cloud.client.publish("meters/m1/recharge", b'{"ok":1}', qos=1)
        await until(lambda: len(seen) == 2)
        assert meter.client.callback_errors == 1
        assert meter.client.connects == 1
    finally:
        await meter.stop()
        await cloud.stop()


async def test_clean_stop_publishes_the_offline_status_instead_of_the_will(accounts):
    will = ("meters/m1/status", b'{"v":1,"state":"offline","reason":"connection_lost"}', 1, True)
    meter = await Meter(accounts, "m1", "pw1", will=will).start()
    await meter.stop(will_payload=b'{"v":1,"state":"offline","reason":"disconnect"}')
    watcher = await Meter(accounts, "cloud", "cpw", subs=[("meters/m1/status", 1)]).start()
    try:
        await until(lambda: watcher.messages)
        assert watcher.messages == [("meters/m1/status",
                                     b'{"v":1,"state":"offline","reason":"disconnect"}', True)]
    finally:
        await watcher.stop()


async def test_tls_connection_to_mosquitto(mosquitto_tls_broker):
    import ssl
    broker = mosquitto_tls_broker
    await broker.add_user("m1", "pw1")
    await broker.add_user("cloud", "cpw", superuser=True)
    context = ssl.create_default_context(cafile=broker.cafile)
    meter = Meter(broker, "m1", "pw1", subs=[("meters/m1/recharge", 1)], tls=True,
                  ssl_context=context)
    meter.client.port = broker.tls_port
    await meter.start()
    cloud = await Meter(broker, "cloud", "cpw").start()
    try:
        cloud.client.publish("meters/m1/recharge", b"over tls", qos=1)
        await until(lambda: meter.messages)
        assert meter.messages[0][1] == b"over tls"
    finally:
        await cloud.stop()
        await meter.stop()


async def test_tls_with_an_untrusted_certificate_never_comes_up(mosquitto_tls_broker):
    broker = mosquitto_tls_broker
    await broker.add_user("m1", "pw1")
    meter = Meter(broker, "m1", "pw1", tls=True)  # default context: the self-signed cert fails
    meter.client.port = broker.tls_port
    await meter.start(wait=False)
    try:
        await until(lambda: meter.client.failures >= 1)
        assert meter.client.connects == 0 and "CERTIFICATE" in meter.client.last_error.upper()
    finally:
        await meter.stop()
