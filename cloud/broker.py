"""Which MQTT broker the cloud talks to, and the meters' broker credentials: the in-process
amqtt broker (no MITA_MQTT_URL: the laptop default), or an external one (mosquitto in CI and
production). Wires broker and bridge into the aiohttp app as one cleanup_ctx."""

import hashlib
import hmac
import logging
import os
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import BrokerError
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

log = logging.getLogger("mita.broker")

BRIDGE_USERNAME = "mita-bridge"
_PASSWORD_CONTEXT = b"mita mqtt password v1\n"


class BrokerConfigError(ValueError):
    """An MQTT setting is malformed."""


class BrokerStartError(RuntimeError):
    """The in-process broker could not start (most often: its port is taken)."""


def meter_broker_password(meter_no, device_key):
    """A meter's broker password: HMAC-SHA256(device key, context + meter number), hex.

    Derived rather than the device key itself, so a broker (or its logs, or its password file)
    never holds the key that signs the meter's HTTP requests. The cloud recomputes it from the
    stored device key whenever it needs it; registration hands it out once, with the key."""
    mac = hmac.new(device_key.encode("utf-8"), _PASSWORD_CONTEXT + meter_no.encode("utf-8"),
                   hashlib.sha256)
    return mac.hexdigest()


def meter_credentials(meter_no, device_key):
    """What registration returns for the meter's config["mqtt"]."""
    return {"mqtt_username": meter_no, "mqtt_password": meter_broker_password(meter_no,
                                                                             device_key)}


def topic_allowed(username, topic, bridge_username):
    """The protocol's ACL: a meter only under meters/<its id>/, the bridge anywhere."""
    if username == bridge_username:
        return True
    if not username or "+" in username or "#" in username or "/" in username:
        return False
    return topic.startswith("meters/%s/" % username)


@dataclass
class LinkSettings:
    enabled: bool = True             # MITA_MQTT=off: no broker, no bridge (HTTP only)
    url: str = ""                    # empty: run the in-process amqtt broker
    bind_host: str = "127.0.0.1"     # the in-process broker's listener
    port: int = 1883
    bridge_username: str = BRIDGE_USERNAME
    bridge_password: str = ""        # empty with the in-process broker: random per start
    client_id: str = "mita-bridge"
    resend_every_s: float = 30.0
    void_after_s: float = 900.0
    mosquitto_password_file: str = ""  # set: the cloud keeps mosquitto's password file
    mosquitto_pid_file: str = ""       # and SIGHUPs the pid in here after each change

    @property
    def embedded(self):
        return not self.url


def _number(env, name, default, kind=float):
    text = env.get(name, "")
    if text == "":
        return default
    try:
        value = kind(text)
    except ValueError:
        raise BrokerConfigError("%s must be a number, got %r" % (name, text)) from None
    if value < 0:
        raise BrokerConfigError("%s must not be negative" % name)
    return value


def link_settings(environ=None):
    """Settings from the environment (MITA_MQTT_*; see docs/operations.md)."""
    env = os.environ if environ is None else environ
    s = LinkSettings()
    s.enabled = env.get("MITA_MQTT", "on").lower() not in ("off", "0", "no", "false")
    s.url = env.get("MITA_MQTT_URL", "")
    if s.url:
        parse_mqtt_url(s.url)  # refuse a bad URL at start, not at first connect
    s.bind_host = env.get("MITA_MQTT_BIND", "") or s.bind_host
    s.port = _number(env, "MITA_MQTT_PORT", s.port, int)
    s.bridge_password = env.get("MITA_MQTT_BRIDGE_PASSWORD", "")
    s.resend_every_s = _number(env, "MITA_MQTT_RESEND_S", s.resend_every_s)
    s.void_after_s = _number(env, "MITA_RECHARGE_VOID_AFTER_S", s.void_after_s)
    s.mosquitto_password_file = env.get("MITA_MOSQUITTO_PASSWORD_FILE", "")
    s.mosquitto_pid_file = env.get("MITA_MOSQUITTO_PID_FILE", "")
    return s


def load_link_settings(env_file=".env"):
    """link_settings from `env_file` overlaid by the environment, as cloud.config does."""
    from cloud.config import parse_env_file
    env = {}
    if env_file and os.path.exists(env_file):
        with open(env_file, encoding="utf-8") as f:
            env.update(parse_env_file(f.read()))
    env.update(os.environ)
    return link_settings(env)


def parse_mqtt_url(url):
    """mqtt://user:password@host:port or mqtts://... -> the bridge's broker dict."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise BrokerConfigError("MITA_MQTT_URL must be mqtt://user:password@host:port")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise BrokerConfigError("MITA_MQTT_URL has a bad port") from None
    unquote = urllib.parse.unquote
    return {"host": parts.hostname, "port": port, "tls": tls,
            "username": unquote(parts.username) if parts.username else BRIDGE_USERNAME,
            "password": unquote(parts.password) if parts.password else None}


# -- the in-process broker -----------------------------------------------------------------

class StoreAccounts:
    """Broker accounts backed by the store: meters by their derived password, the bridge by
    its own. Registration needs no step here: a new meter can connect at once."""

    def __init__(self, store, bridge_username, bridge_password):
        self.store = store
        self.bridge_username = bridge_username
        self.bridge_password = bridge_password
        self.refused = 0

    async def check(self, username, password):
        ok = await self._check(username, password or "")
        if not ok:
            self.refused += 1
        return ok

    async def _check(self, username, password):
        if not username:
            return False
        if username == self.bridge_username:
            return hmac.compare_digest(password.encode(), self.bridge_password.encode())
        key = await self.store.get_device_key(username)
        if not key:
            return False
        expected = meter_broker_password(username, key)
        return hmac.compare_digest(password.encode(), expected.encode())

    def allowed(self, username, topic):
        return topic_allowed(username, topic, self.bridge_username)


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
    import socket
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# -- the app wiring -------------------------------------------------------------------------

LINK_SETTINGS = web.AppKey("mqtt_settings", LinkSettings)
LINK = web.AppKey("mqtt_link", object)       # the running Bridge
LINK_BROKER = web.AppKey("mqtt_broker", object)  # the EmbeddedBroker, if one runs


def setup_link(app, settings, **bridge_options):
    """Add the broker + bridge cleanup_ctx to an app made by cloud.app.create_app."""
    app[LINK_SETTINGS] = settings
    if settings.enabled:
        if settings.embedded and settings.port:
            _check_port_free(settings.bind_host, settings.port)
        app.cleanup_ctx.append(_link_ctx(settings, bridge_options))


def _check_port_free(host, port):
    """Fail before the app starts (and before the other clients open) on a taken port."""
    import socket
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise BrokerStartError(_PORT_TAKEN % (host, port, error)) from None


def _link_ctx(settings, bridge_options):
    async def ctx(app):
        from cloud.bridge import Bridge
        from cloud.views.keys import RECHARGE_SINK, STORE
        store = app[STORE]
        broker = None
        if settings.embedded:
            password = settings.bridge_password or secrets.token_urlsafe(24)
            accounts = StoreAccounts(store, settings.bridge_username, password)
            broker = EmbeddedBroker(accounts, settings.bind_host, settings.port)
            await broker.start()
            app[LINK_BROKER] = broker
            target = {"host": broker.host, "port": broker.port,
                      "username": settings.bridge_username, "password": password}
        else:
            target = parse_mqtt_url(settings.url)
        if settings.mosquitto_password_file:
            from cloud.mosquitto import sync_password_file
            await sync_password_file(store, settings.mosquitto_password_file,
                                     {target["username"]: target["password"] or ""},
                                     settings.mosquitto_pid_file)
        target["client_id"] = settings.client_id
        options = dict({"resend_every_s": settings.resend_every_s,
                        "void_after_s": settings.void_after_s}, **bridge_options)
        bridge = Bridge(store, target, app[RECHARGE_SINK], **options)
        app[LINK] = bridge
        await bridge.start()
        try:
            yield
        finally:
            await bridge.stop()
            if broker is not None:
                await broker.stop()
    return ctx


def meter_registered(settings, meter_no, device_key):
    """Call after a meter is registered: returns its broker credentials and, when the cloud
    keeps mosquitto's password file, adds the meter to it and reloads mosquitto.
    settings: LinkSettings, or None when this process runs no link."""
    if settings is not None and settings.mosquitto_password_file:
        from cloud.mosquitto import add_password
        add_password(settings.mosquitto_password_file, meter_no,
                     meter_broker_password(meter_no, device_key), settings.mosquitto_pid_file)
    return meter_credentials(meter_no, device_key)

