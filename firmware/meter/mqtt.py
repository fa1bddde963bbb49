# The meter's asyncio MQTT 3.1.1 client: a supervisor task that (re)connects through one path
# with capped backoff, and per-session reader, sender and keepalive tasks. The same code runs
# under MicroPython's asyncio and CPython's (streams, Event, Lock, wait_for, create_task only).
import asyncio
import json
import random
from micropython import const

from meter import mqtt_packets as pk
from meter.json_buffer import SIZE as _JSON_SIZE, JsonBuffer
from meter.mqtt_reader import read_packet

_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60000)


class MQTTError(Exception):
    """The broker refused us, or spoke something that is not MQTT."""


class MQTTClient:
    """Publish with publish() (bytes, str, or a dict sent as JSON from the client's one
    buffer); incoming messages go to on_message(topic, payload, retained),
    a plain function: a QoS 1 message is PUBACKed only after it returns, so work it persists
    before returning is never lost to a power cut (the broker re-delivers instead).

    on_connect() runs after every CONNACK+SUBACK, before `up` is set. `up` and `down` are
    asyncio Events: exactly one is set at a time."""

    def __init__(self, client_id, host, port=1883, user=None, password=None, tls=False,
                 ssl_context=None, keepalive_s=60, clean_session=False, will=None,
                 subscriptions=(), on_message=None, on_connect=None, queue_size=32,
                 max_inflight=16, max_packet=4096, json_buffer=_JSON_SIZE,
                 connect_timeout_ms=10000, backoff_min_ms=_BACKOFF_MIN_MS,
                 backoff_max_ms=_BACKOFF_MAX_MS, log=None):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.tls = tls
        self.ssl_context = ssl_context
        self.keepalive_s = keepalive_s
        self.clean_session = clean_session
        self.will = will  # (topic, payload, qos, retain)
        self.subscriptions = list(subscriptions)
        self.on_message = on_message
        self.on_connect = on_connect
        self.queue_size = queue_size
        self.max_inflight = max_inflight
        self.max_packet = max_packet
        self.connect_timeout_ms = connect_timeout_ms
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.log = log
        # Half the keepalive: ping when idle this long, give up after three silent periods.
        self.ping_ms = keepalive_s * 500
        self.up = asyncio.Event()
        self.down = asyncio.Event()
        self.down.set()
        self.connected = False
        self.last_error = None
        self.refusal = 0  # the last CONNACK refusal code, 0 if none
        # counters, for telemetry and tests
        self.connects = 0
        self.failures = 0
        self.dropped = 0
        self.oversized = 0
        self.bad_packets = 0
        self.callback_errors = 0
        self.json_overflows = 0  # dict payloads longer than the JSON buffer (sent all the same)
        self.received = 0
        self.sent = 0
        self._queue = []  # [topic, payload, qos, retain]
        self._inflight = []  # [pid, topic, payload, retain], oldest first
        self._next_pid = 0
        self._suback_pid = 0
        self._suback = asyncio.Event()
        self._wake = asyncio.Event()
        self._dead = asyncio.Event()
        self._lock = asyncio.Lock()
        self._reader = None
        self._writer = None
        self._tasks = []
        self._rx_seen = False
        self._tx_seen = False
        self._running = False
        self._json = JsonBuffer(json_buffer)

    # --- what the application calls ------------------------------------------------------
    def publish(self, topic, payload, qos=0, retain=False, first=False):
        """Queue a message (never blocks). A full queue drops its oldest entry and counts it.
        first=True puts it ahead of what is waiting (a status that must lead). A dict payload
        is turned into JSON only as it is sent: the caller must not change it after this."""
        item = [topic, payload, qos, retain]
        if first:
            self._queue.insert(0, item)
        else:
            self._queue.append(item)
        while len(self._queue) > self.queue_size:
            self._queue.pop(0 if not first else 1)
            self.dropped += 1
        self._wake.set()

    def pending(self):
        """Messages not yet handed to the broker, plus QoS 1 ones not yet acknowledged."""
        return len(self._queue) + len(self._inflight)

    def reconnect(self, why="asked"):
        """The one way a session ends: idempotent, from any task, any number of times."""
        if self.connected or self._writer is not None:
            if not self._dead.is_set():
                self.last_error = why
                self._log("warn", "connection down: %s", why)
            self._dead.set()

    async def run(self, network_up=None):
        """Supervise forever: wait for the network (an Event, if given), connect, serve the
        session until it dies, back off, repeat. Cancel the task or call stop() to end it."""
        self._running = True
        failures = 0
        while self._running:
            if network_up is not None:
                await network_up.wait()
            try:
                await self._open()
            except Exception as exc:  # any failure to connect is retried the same way
                self.failures += 1
                failures += 1
                self.last_error = repr(exc)
                self._log("warn", "connect to %s:%d failed: %r", self.host, self.port, exc)
                await self._close()
                await asyncio.sleep(self._backoff_ms(failures) / 1000)
                continue
            failures = 0
            await self._dead.wait()
            await self._close()
            if self._running:
                await asyncio.sleep(self._backoff_ms(1) / 1000)

    async def stop(self, will_payload=None):
        """End cleanly: optionally publish a last message (an offline status) then DISCONNECT,
        so the broker does not send the will."""
        self._running = False
        if self.connected:
            try:
                if will_payload is not None and self.will is not None:
                    await self._send(pk.publish(self.will[0], will_payload, 0, self.will[3]))
                await self._send(pk.DISCONNECT_PACKET)
            except Exception:  # already gone: nothing more to say
                pass
        self._dead.set()
        await self._close()

    # --- one session ---------------------------------------------------------------------
    async def _open(self):
        self._dead = asyncio.Event()
        timeout = self.connect_timeout_ms / 1000
        ssl = None
        if self.tls:
            ssl = self.ssl_context if self.ssl_context is not None else True
        if ssl is None:
            opening = asyncio.open_connection(self.host, self.port)
        else:
            opening = asyncio.open_connection(self.host, self.port, ssl=ssl)
        self._reader, self._writer = await asyncio.wait_for(opening, timeout)
        transport = getattr(self._writer, "transport", None)
        if transport is not None:
            # A CPython stream: its drain() then waits until nothing is left unsent, as
            # MicroPython's always does, so the JSON buffer is free once a send returns.
            transport.set_write_buffer_limits(0)
        await self._send(pk.connect(self.client_id, self.user, self.password, self.keepalive_s,
                                    self.clean_session, self.will))
        kind, flags, body = await asyncio.wait_for(self._read_packet(), timeout)
        if kind != pk.CONNACK:
            raise MQTTError("expected CONNACK, got packet type %d" % kind)
        session_present, code = pk.parse_connack(body)
        if code:
            self.refusal = code
            raise MQTTError("refused: %s" % pk.REFUSALS.get(code, str(code)))
        self.refusal = 0
        self.connected = True
        self._rx_seen = True
        self._tasks = [asyncio.create_task(self._read_loop()),
                       asyncio.create_task(self._keepalive_loop())]
        if self.subscriptions:
            self._suback.clear()
            self._suback_pid = self._pid()
            await self._send(pk.subscribe(self._suback_pid, self.subscriptions))
            await asyncio.wait_for(self._suback.wait(), timeout)
        # What the broker had not acknowledged goes again, flagged DUP, before anything new.
        # A copy: PUBACKs for these may arrive (and shrink the list) while they are sent.
        for pid, topic, payload, retain in list(self._inflight):
            await self._send_publish(topic, payload, 1, retain, True, pid)
        self.connects += 1
        self._log("info", "connected to %s:%d (session %s)", self.host, self.port,
                  "resumed" if session_present else "new")
        if self.on_connect is not None:
            try:
                self.on_connect()
            except Exception as exc:  # a handler bug must not keep the meter offline
                self.callback_errors += 1
                self._log("error", "connect handler failed: %r", exc)
        self._tasks.append(asyncio.create_task(self._send_loop()))
        self.down.clear()
        self.up.set()

    async def _close(self):
        self.connected = False
        tasks = self._tasks
        self._tasks = []
        for task in tasks:
            task.cancel()
        writer = self._writer
        self._writer = None
        self._reader = None
        if writer is not None:
            try:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 1)
            except Exception:  # a socket that is already broken closes with an error
                pass
        if self.up.is_set():
            self.up.clear()
            self.down.set()

    def _backoff_ms(self, failures):
        delay = self.backoff_min_ms << min(failures - 1, 10)
        delay = min(delay, self.backoff_max_ms)
        # Up to half again at random, so a fleet does not hammer a restarted broker in step.
        return delay + random.getrandbits(16) % (delay // 2 + 1)

    def _pid(self):
        in_use = [entry[0] for entry in self._inflight]
        while True:
            self._next_pid = self._next_pid % 65535 + 1
            if self._next_pid not in in_use and self._next_pid != self._suback_pid:
                return self._next_pid

    # --- bytes on the wire ---------------------------------------------------------------
    async def _send(self, packet):
        writer = self._writer
        if writer is None:
            raise OSError("not connected")
        # One writer at a time: MicroPython's streams allow a single waiter per direction.
        async with self._lock:
            writer.write(packet)
            await writer.drain()
        self._tx_seen = True

    async def _send_publish(self, topic, payload, qos, retain, dup=False, pid=0):
        """A PUBLISH as head and payload (a dict's JSON written into the one buffer first)."""
        writer = self._writer
        if writer is None:
            raise OSError("not connected")
        async with self._lock:
            # Serialised only once the lock is held, and sent before the lock is let go: the
            # next message is written into the buffer only after this drain(), which returns
            # once the stream holds nothing of it (MicroPython's writes everything out; a
            # CPython transport is set to wait for an empty buffer in _open, as 3.12+ keeps a
            # view of an unsent rest instead of a copy).
            head, body = pk.publish_parts(topic, self._payload(payload), qos, retain, dup, pid)
            writer.write(head)
            writer.write(body)
            await writer.drain()
        self._tx_seen = True

    def _payload(self, payload):
        if type(payload) is not dict:
            return payload
        view = self._json.dump(payload)
        if view is not None:
            return view
        # Longer than the buffer: sent all the same (a status, an ack or a history record the
        # cloud waits for must not be lost), built the old way, and counted so it shows.
        self.json_overflows += 1
        self._log("warn", "a %d-byte message overflowed the JSON buffer", self._json.size)
        return json.dumps(payload)

    async def _read_packet(self):
        """(type, flags, body); an oversized packet is read past, counted, and its body is the
        PUBLISH's packet id (0 if it had none), for the PUBACK."""
        reader = self._reader
        if reader is None:
            raise OSError("not connected")
        kind, flags, body = await read_packet(reader, self.max_packet)
        self._rx_seen = True
        if type(body) is int:
            self.oversized += 1
            self._log("warn", "dropped an oversized packet (type %d)", kind)
        return kind, flags, body

    # --- session tasks -------------------------------------------------------------------
    async def _read_loop(self):
        try:
            while True:
                kind, flags, body = await self._read_packet()
                await self._handle(kind, flags, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # EOF, reset, garbage: all end the session the same way
            self.reconnect("read: %r" % (exc,))

    async def _handle(self, kind, flags, body):
        if kind == pk.PUBLISH:
            if type(body) is int:  # oversized, already counted and skipped
                if body:
                    await self._send(pk.puback(body))
                return
            try:
                topic, payload, qos, retain, dup, pid = pk.parse_publish(flags, body)
            except pk.PacketError:
                self.bad_packets += 1
                raise
            self.received += 1
            self._deliver(topic, payload, retain)
            if qos:
                await self._send(pk.puback(pid))
        elif kind == pk.PUBACK:
            if type(body) is not int:
                pid = pk.parse_pid(body)
                for i in range(len(self._inflight)):
                    if self._inflight[i][0] == pid:
                        self._inflight.pop(i)
                        self._wake.set()
                        break
        elif kind == pk.SUBACK:
            if type(body) is not int:
                pid, granted = pk.parse_suback(body)
                if pid == self._suback_pid:
                    if 0x80 in granted:
                        self._log("error", "broker refused a subscription: %r", granted)
                    self._suback.set()
        elif kind != pk.PINGRESP:
            self.bad_packets += 1
            raise MQTTError("unexpected packet type %d" % kind)

    def _deliver(self, topic, payload, retain):
        if self.on_message is None:
            return
        try:
            self.on_message(topic.decode(), payload, retain)
        except Exception as exc:  # a bad message or a handler bug must not end the session
            self.callback_errors += 1
            self._log("error", "message handler failed: %r", exc)

    async def _send_loop(self):
        try:
            while True:
                if not self._queue or len(self._inflight) >= self.max_inflight:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                topic, payload, qos, retain = self._queue.pop(0)
                if qos:
                    pid = self._pid()
                    self._inflight.append([pid, topic, payload, retain])
                    await self._send_publish(topic, payload, 1, retain, False, pid)
                else:
                    await self._send_publish(topic, payload, 0, retain)
                self.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.reconnect("send: %r" % (exc,))

    async def _keepalive_loop(self):
        # Half-keepalive periods: ping when idle for one, give up after three silent ones
        # (1.5 keepalive), which is also when the broker would give up on us.
        if self.ping_ms <= 0:
            return
        period = self.ping_ms / 1000
        silent = 0
        try:
            while True:
                self._tx_seen = False
                await asyncio.sleep(period)
                if self._rx_seen:
                    self._rx_seen = False
                    silent = 0
                else:
                    silent += 1
                    if silent >= 3:
                        self.reconnect("no reply within 1.5 keepalive")
                        return
                if not self._tx_seen:
                    await self._send(pk.PINGREQ_PACKET)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.reconnect("ping: %r" % (exc,))

    def _log(self, level, msg, *args):
        if self.log is not None:
            getattr(self.log, level)(msg, *args)
