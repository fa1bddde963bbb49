"""The firmware MQTT client against a scripted broker, for what a real broker will not do on
demand: withhold PUBACKs, go silent, send garbage, refuse, never answer."""
import asyncio
import json

from meter import mqtt_packets as pk
from meter.mqtt import MQTTClient
from brokers import free_port
from test_mqtt_client import until


class FakeBroker:
    def __init__(self):
        self.port = free_port()
        self.packets = []  # (connection number, type, flags, body)
        self.conns = []
        self.puback = True
        self.pingresp = True
        self.connack = True
        self.refuse = 0
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self):
        for _, w in self.conns:
            w.close()
        self.server.close()
        await self.server.wait_closed()

    def drop_connections(self):
        for _, w in self.conns:
            w.transport.abort()

    def send(self, data):
        self.conns[-1][1].write(data)

    def of(self, kind, conn=None):
        return [p for p in self.packets if p[1] == kind and (conn is None or p[0] == conn)]

    async def _serve(self, reader, writer):
        n = len(self.conns) + 1
        self.conns.append((reader, writer))
        buf = b""
        while True:
            data = await reader.read(4096)
            if not data:
                return
            buf += data
            while True:
                found = pk.split(buf)
                if found is None:
                    break
                kind, flags, body, buf = found
                self.packets.append((n, kind, flags, body))
                self._answer(writer, kind, flags, body)

    def _answer(self, writer, kind, flags, body):
        if kind == pk.CONNECT and self.connack:
            writer.write(b"\x20\x02\x00" + bytes([self.refuse]))
        elif kind == pk.SUBSCRIBE:
            writer.write(b"\x90\x03" + body[:2] + b"\x01")
        elif kind == pk.PUBLISH and flags & 6 and self.puback:
            pid = pk.parse_publish(flags, body)[5]
            writer.write(pk.puback(pid))
        elif kind == pk.PINGREQ and self.pingresp:
            writer.write(b"\xd0\x00")


async def started(broker, **kw):
    kw.setdefault("backoff_min_ms", 1)
    kw.setdefault("backoff_max_ms", 1)
    client = MQTTClient("m1", "127.0.0.1", broker.port, user="m1", password="pw", **kw)
    task = asyncio.create_task(client.run())
    return client, task


async def finish(client, task, broker):
    await client.stop()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await broker.stop()


async def test_unacked_qos1_goes_again_with_dup_and_the_same_packet_id():
    broker = FakeBroker()
    broker.puback = False
    await broker.start()
    client, task = await started(broker)
    try:
        await asyncio.wait_for(client.up.wait(), 5)
        client.publish("meters/m1/history", b"a", qos=1)
        client.publish("meters/m1/history", b"b", qos=1)
        await until(lambda: len(broker.of(pk.PUBLISH, 1)) == 2)
        first = [pk.parse_publish(f, b) for _, _, f, b in broker.of(pk.PUBLISH, 1)]
        assert [(p[1], p[4]) for p in first] == [(b"a", False), (b"b", False)]
        broker.puback = True
        broker.drop_connections()
        await until(lambda: len(broker.of(pk.PUBLISH, 2)) == 2)
        again = [pk.parse_publish(f, b) for _, _, f, b in broker.of(pk.PUBLISH, 2)]
        assert [(p[1], p[4], p[5]) for p in again] == [(p[1], True, p[5]) for p in first]
        await until(lambda: client.pending() == 0)
        assert client.connects == 2
    finally:
        await finish(client, task, broker)


async def test_a_dict_goes_out_as_its_json_and_one_too_long_for_the_buffer_is_counted_and_sent():
    broker = FakeBroker()
    broker.puback = False
    await broker.start()
    client, task = await started(broker, json_buffer=64)
    try:
        await asyncio.wait_for(client.up.wait(), 5)
        small = {"v": 1, "seq": 7}
        big = {"v": 1, "text": "x" * 100}
        client.publish("meters/m1/history", small, qos=1)
        client.publish("meters/m1/telemetry", big)
        await until(lambda: len(broker.of(pk.PUBLISH, 1)) == 2)
        sent = [pk.parse_publish(f, b) for _, _, f, b in broker.of(pk.PUBLISH, 1)]
        assert [p[1] for p in sent] == [json.dumps(small).encode(), json.dumps(big).encode()]
        assert client.json_overflows == 1
        broker.puback = True
        broker.drop_connections()  # the unacknowledged dict is written again, the same bytes
        await until(lambda: len(broker.of(pk.PUBLISH, 2)) == 1)
        again = pk.parse_publish(*broker.of(pk.PUBLISH, 2)[0][2:])
        assert (again[1], again[4], again[5]) == (sent[0][1], True, sent[0][5])
        await until(lambda: client.pending() == 0)
    finally:
        await finish(client, task, broker)


async def test_connect_carries_credentials_will_and_persistent_session():
    broker = FakeBroker()
    await broker.start()
    will = ("meters/m1/status", b"offline", 1, True)
    client, task = await started(broker, will=will, subscriptions=[("meters/m1/recharge", 1)])
    try:
        await asyncio.wait_for(client.up.wait(), 5)
        body = broker.of(pk.CONNECT)[0][3]
        assert body == pk.connect("m1", "m1", "pw", 60, False, will)[2:]
        sub = broker.of(pk.SUBSCRIBE)[0]
        assert sub[3][2:] == b"\x00\x12meters/m1/recharge\x01"
    finally:
        await finish(client, task, broker)


async def test_idle_link_pings_and_a_silent_broker_is_declared_dead():
    broker = FakeBroker()
    await broker.start()
    client, task = await started(broker)
    client.ping_ms = 20
    try:
        await asyncio.wait_for(client.up.wait(), 5)
        await until(lambda: len(broker.of(pk.PINGREQ)) >= 4)
        assert client.connects == 1  # answered pings keep the session
        broker.pingresp = False
        await until(lambda: client.connects >= 2)
        assert "keepalive" in client.last_error
    finally:
        await finish(client, task, broker)


async def test_qos1_message_is_acknowledged_only_after_the_handler_returns():
    broker = FakeBroker()
    await broker.start()
    acked_before = []

    def handler(topic, payload, retained):
        acked_before.append(len(broker.of(pk.PUBACK)))

    client, task = await started(broker, on_message=handler)
    try:
        await asyncio.wait_for(client.up.wait(), 5)
        broker.send(pk.publish("meters/m1/recharge", b"x", qos=1, pid=5))
        await until(lambda: broker.of(pk.PUBACK))
        assert acked_before == [0]
        assert broker.of(pk.PUBACK)[0][3] == b"\x00\x05"
    finally:
        await finish(client, task, broker)


async def test_garbage_from_the_broker_ends_the_session_not_the_client():
    broker = FakeBroker()
    await broker.start()
    client, task = await started(broker)
    try:
        await asyncio.wait_for(client.up.wait(), 5)
        broker.send(b"\x30\x04\x00\x09ab")  # a PUBLISH whose topic runs past its body
        await until(lambda: client.connects >= 2)
        assert client.bad_packets == 1
        broker.send(b"\xf0\x00")  # reserved packet type 15
        await until(lambda: client.connects >= 3)
        assert not task.done()
    finally:
        await finish(client, task, broker)


async def test_refused_and_unanswered_connects_are_retried_with_backoff():
    broker = FakeBroker()
    broker.refuse = 5
    await broker.start()
    client, task = await started(broker, connect_timeout_ms=50)
    try:
        await until(lambda: client.failures >= 2)
        assert client.refusal == 5 and not client.up.is_set()
        broker.refuse = 0
        broker.connack = False  # now silent after CONNECT: the timeout ends each try
        n = client.failures
        await until(lambda: client.failures >= n + 2)
        broker.connack = True
        await asyncio.wait_for(client.up.wait(), 5)
        assert client.refusal == 0
    finally:
        await finish(client, task, broker)


async def test_full_queue_drops_the_oldest_and_counts_them():
    broker = FakeBroker()
    client = MQTTClient("m1", "127.0.0.1", broker.port, queue_size=4, backoff_min_ms=1,
                        backoff_max_ms=1)
    for i in range(7):
        client.publish("meters/m1/telemetry", b"%d" % i)
    assert client.dropped == 3 and client.pending() == 4
    client.publish("meters/m1/status", b"first", qos=1, first=True)
    assert client.dropped == 4
    await broker.start()
    task = asyncio.create_task(client.run())
    try:
        await until(lambda: len(broker.of(pk.PUBLISH)) == 4)
        payloads = [pk.parse_publish(f, b)[1] for _, _, f, b in broker.of(pk.PUBLISH)]
        assert payloads == [b"first", b"4", b"5", b"6"]
    finally:
        await finish(client, task, broker)


def test_backoff_doubles_and_is_capped_with_bounded_jitter():
    client = MQTTClient("m1", "127.0.0.1", 1, backoff_max_ms=8000)
    for failures, base in ((1, 1000), (2, 2000), (3, 4000), (4, 8000), (9, 8000), (50, 8000)):
        for _ in range(20):
            delay = client._backoff_ms(failures)
            assert base <= delay <= base + base // 2, (failures, delay)


async def test_reconnect_is_idempotent_one_new_session_per_loss():
    broker = FakeBroker()
    await broker.start()
    client, task = await started(broker)
    try:
        await asyncio.wait_for(client.up.wait(), 5)
        for _ in range(5):
            client.reconnect("test")
        await until(lambda: client.connects == 2 and client.up.is_set())
        for _ in range(20):
            await asyncio.sleep(0)
        assert client.connects == 2 and len(broker.conns) == 2
    finally:
        await finish(client, task, broker)


async def test_a_connect_handler_that_raises_does_not_keep_the_client_offline():
    broker = FakeBroker()
    await broker.start()

    def broken():
        raise RuntimeError("bug")

    client, task = await started(broker, on_connect=broken)
    try:
        await asyncio.wait_for(client.up.wait(), 5)
        assert client.callback_errors == 1 and client.connects == 1
    finally:
        await finish(client, task, broker)


async def test_pubacks_arriving_during_the_dup_resend_lose_nothing():
    broker = FakeBroker()
    broker.puback = False
    await broker.start()
    client, task = await started(broker)
    try:
        await asyncio.wait_for(client.up.wait(), 5)
        # Big enough to fill the socket buffer, so each resend waits in drain() and the
        # reader runs in between, as it always does on MicroPython.
        big = [b"%d" % i + b"." * 3000000 for i in range(6)]
        for payload in big:
            client.publish("meters/m1/history", payload, qos=1)
        await until(lambda: len(broker.of(pk.PUBLISH, 1)) == 6)
        broker.puback = True  # the second session acks each DUP at once, mid-resend
        broker.drop_connections()
        await until(lambda: client.pending() == 0)
        again = [pk.parse_publish(f, b)[1] for _, _, f, b in broker.of(pk.PUBLISH, 2)]
        assert again == big
    finally:
        await finish(client, task, broker)
