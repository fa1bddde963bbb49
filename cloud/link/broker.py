"""The in-process MQTT broker (amqtt), for a laptop or a pilot: StoreAccounts decide logins,
client ids and topics, through a check at CONNECT and amqtt's auth and topic plugins."""

import logging
import socket
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import ReaderAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, BrokerError
from amqtt.mqtt.connack import IDENTIFIER_REJECTED, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

log = logging.getLogger("mita.broker")


class BrokerStartError(RuntimeError):
    """The in-process broker could not start (most often: its port is taken)."""


class StoreAuthPlugin(BaseAuthPlugin):
    """amqtt authentication through StoreAccounts."""

    @dataclass
    class Config:
        accounts: Any = None

    async def authenticate(self, *, session):
        try:
            return await self.context.config.accounts.check(session.username, session.password)
        except Exception:  # a store outage refuses the connection; it never crashes the broker
            log.exception("broker authentication failed")
            return False


class MeterTopicPlugin(BaseTopicPlugin):
    """amqtt ACL: publish and subscribe only where topic_allowed says."""

    @dataclass
    class Config:
        accounts: Any = None

    async def topic_filtering(self, *, session=None, topic=None, action=None):
        if action == Action.RECEIVE:
            return True  # what a client receives was already filtered at subscribe
        user = session.username if session is not None else None
        direction = "subscribe" if action == Action.SUBSCRIBE else "publish"
        return bool(topic) and self.context.config.accounts.allowed(user, topic, direction)


class _Replayed(ReaderAdapter):
    """The connection with the CONNECT packet the identity check already read put back in
    front, for amqtt to read as if nobody had."""

    def __init__(self, first, reader):
        self._first = bytes(first)
        self._reader = reader

    async def read(self, n=-1):
        first, self._first = self._first, b""
        if n < 0:
            return first + await self._reader.read(-1)
        if len(first) >= n:
            self._first = first[n:]
            return first[:n]
        return first + await self._reader.read(n - len(first))

    def feed_eof(self):
        self._reader.feed_eof()


class GuardedBroker(Broker):
    """amqtt with the login and the client id checked on the CONNECT, before amqtt looks
    the client id up: amqtt 0.12.1 drops, replaces or takes over the session of that client
    id before its auth plugins run, so a refusal there would come too late (the rightful
    client already kicked, its queued recharges handed over)."""

    def __init__(self, config, accounts):
        super().__init__(config)
        self.accounts = accounts

    async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
        connect = await ConnectPacket.from_stream(reader)
        code = await self._refusal(connect)
        if code is not None:
            await ConnackPacket.build(0, code).to_stream(writer)
            await writer.close()
            raise AMQTTError("CONNECT refused (code %d) from %s" % (code, remote_address))
        return await super()._initialize_client_session(
            _Replayed(connect.to_bytes(), reader), writer, remote_address, remote_port)

    async def _publish_retained_messages_for_subscription(self, subscription, session):
        # amqtt 0.12.1 runs this at every CONNECT for every filter any client subscribed to,
        # not only the connecting session's: each meter got every retained status the
        # bridge's meters/+/status matches. Only a session's own subscriptions get retained
        # messages.
        subscribers = self._subscriptions.get(subscription[0], ())
        if any(s.client_id == session.client_id for s, _ in subscribers):
            await super()._publish_retained_messages_for_subscription(subscription, session)

    async def _refusal(self, connect):
        """None to let amqtt go on, else the CONNACK return code that refuses."""
        payload = connect.payload
        if payload is None:
            return None  # malformed: amqtt's own checks answer it
        username, client_id = payload.username, payload.client_id
        try:
            if not await self.accounts.check(username, payload.password):
                return NOT_AUTHORIZED
        except Exception:  # a store outage refuses the connection; it never crashes the broker
            log.exception("broker authentication failed")
            return NOT_AUTHORIZED
        if not self.accounts.client_id_ok(username, client_id):
            log.warning("client id refused: a login may only use its own", extra={
                "username": username, "client_id": (client_id or "")[:64]})
            return IDENTIFIER_REJECTED
        return None


class EmbeddedBroker:
    """amqtt in this process on host:port (port 0: a free one, see .port after start)."""

    def __init__(self, accounts, host="127.0.0.1", port=1883):
        self.accounts = accounts
        self.host = host
        self.port = port or _free_port(host)
        self.broker = None

    async def start(self):
        plugin = __name__ + ".%s"
        config = {
            "listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (self.host, self.port)}},
            "plugins": {plugin % "StoreAuthPlugin": {"accounts": self.accounts},
                        plugin % "MeterTopicPlugin": {"accounts": self.accounts}},
        }
        broker = GuardedBroker(config, self.accounts)
        try:
            await broker.start()
        except BrokerError as error:
            raise BrokerStartError(_PORT_TAKEN % (self.host, self.port,
                                                  error.__cause__ or error)) from None
        self.broker = broker
        log.info("in-process mqtt broker", extra={"host": self.host, "port": self.port})

    async def stop(self):
        if self.broker is not None:
            await self.broker.shutdown()
            self.broker = None


_PORT_TAKEN = ("the in-process MQTT broker cannot listen on %s:%d (%s); set MITA_MQTT_PORT, "
               "or MITA_MQTT_URL for another broker, or MITA_MQTT=off")


def _free_port(host):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port_free(host, port):
    """Fail before the app starts (and before the other clients open) on a taken port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise BrokerStartError(_PORT_TAKEN % (host, port, error)) from None
