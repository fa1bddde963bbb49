"""Which MQTT broker the cloud talks to (MITA_MQTT_*, docs/operations.md): the in-process
amqtt broker (no MITA_MQTT_URL: the laptop default), or an external one (mosquitto in CI and
production), and how the bridge behaves on it."""

import os
import urllib.parse
from dataclasses import dataclass

from cloud.link.accounts import BRIDGE_USERNAME


class BrokerConfigError(ValueError):
    """An MQTT setting is malformed."""


@dataclass
class LinkSettings:
    enabled: bool = True             # MITA_MQTT=off: no broker, no bridge (HTTP only)
    url: str = ""                    # empty: run the in-process amqtt broker
    bind_host: str = "127.0.0.1"     # the in-process broker's listener
    port: int = 1883
    bridge_username: str = BRIDGE_USERNAME
    bridge_password: str = ""        # empty with the in-process broker: random per start
    resend_every_s: float = 30.0
    void_after_s: float = 900.0
    mosquitto_password_file: str = ""  # set: the cloud keeps mosquitto's password file
    mosquitto_pid_file: str = ""       # and SIGHUPs the pid in here after each change
    share_group: str = ""            # set: one of several instances ($share/<group>/..., MQTT 5)
    session_expiry_s: int = 300      # MQTT 5: how long the broker keeps a gone bridge's session

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
    s.share_group = _share_group(env.get("MITA_MQTT_SHARE_GROUP", ""), s)
    s.session_expiry_s = _number(env, "MITA_MQTT_SESSION_EXPIRY_S", s.session_expiry_s, int)
    return s


_NO_SHARING = ("MITA_MQTT_SHARE_GROUP is set (several cloud instances on one broker), but "
               "MITA_MQTT_URL is empty: the in-process amqtt broker (0.12.1) speaks MQTT 3.1.1 "
               "only and has no shared subscriptions, and each instance would start its own. "
               "Run one instance with it, or point every instance at an MQTT 5 broker "
               "(mosquitto 2, EMQX, VerneMQ) with MITA_MQTT_URL")


def _share_group(group, settings):
    """The shared-subscription group name, checked: one topic level, no wildcards."""
    if not group:
        return ""
    if any(c in group for c in "/+#") or any(c.isspace() for c in group):
        raise BrokerConfigError("MITA_MQTT_SHARE_GROUP must be one word with no /, + or #")
    if settings.enabled and settings.embedded:
        raise BrokerConfigError(_NO_SHARING)
    return group


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
