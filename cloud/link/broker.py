"""The in-process MQTT broker (amqtt), for a laptop or a pilot: StoreAccounts decide logins
and topics through amqtt's auth and topic plugins."""

import logging
import socket
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import BrokerError
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
        return bool(topic) and self.context.config.accounts.allowed(user, topic)


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
        broker = Broker(config)
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
