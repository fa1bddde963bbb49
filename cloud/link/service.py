"""`Link`: the meter link as the rest of the cloud sees it. It starts the broker (in-process
unless MITA_MQTT_URL names one) and the bridge, tells the bridge when a meter has something
new to fetch (`kick`), and hands a newly registered meter its broker login."""

import logging
import secrets

from cloud.link.accounts import StoreAccounts, meter_broker_password, meter_credentials
from cloud.link.bridge import Bridge
from cloud.link.settings import parse_mqtt_url

log = logging.getLogger("mita.link")


class Link:
    """Built by create_app for every app; with `settings.enabled` false it runs nothing and
    `kick` does nothing (the recharge stays pending in the store for a later link)."""

    def __init__(self, settings, store, bridge_options=None):
        self.settings = settings
        self.store = store
        self.bridge_options = bridge_options or {}
        self.bridge = None
        self.broker = None

    async def start(self):
        settings = self.settings
        if not settings.enabled:
            return
        if settings.embedded:
            from cloud.link.broker import EmbeddedBroker  # amqtt only when it runs here
            password = settings.bridge_password or secrets.token_urlsafe(24)
            accounts = StoreAccounts(self.store, settings.bridge_username, password)
            self.broker = EmbeddedBroker(accounts, settings.bind_host, settings.port)
            await self.broker.start()
            target = {"host": self.broker.host, "port": self.broker.port,
                      "username": settings.bridge_username, "password": password}
        else:
            target = parse_mqtt_url(settings.url)
        if settings.mosquitto_password_file:
            from cloud.link.mosquitto import sync_password_file
            await sync_password_file(self.store, settings.mosquitto_password_file,
                                     {target["username"]: target["password"] or ""},
                                     settings.mosquitto_pid_file)
        target["client_id"] = target["username"]  # client ids are bound to logins
        target["share_group"] = settings.share_group
        target["session_expiry_s"] = settings.session_expiry_s
        options = dict({"resend_every_s": settings.resend_every_s,
                        "void_after_s": settings.void_after_s}, **self.bridge_options)
        self.bridge = Bridge(self.store, target, **options)
        await self.bridge.start()

    async def stop(self):
        if self.bridge is not None:
            await self.bridge.stop()
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None

    def counters(self):
        """The bridge's counters as `link_<name>`, and, when the broker runs in this process,
        what it refused: `broker_refused_logins`, `_topics` (outside the ACL) and
        `_client_ids` (a login claiming another client's id). mosquitto keeps its own: it
        logs each refused publish, and binds every client id to its login, so a claimed id
        is never seen as one."""
        out = {}
        if self.bridge is not None:
            out.update(("link_" + name, value) for name, value in self.bridge.counters.items())
        if self.broker is not None:
            accounts = self.broker.accounts
            out.update(broker_refused_logins=accounts.refused,
                       broker_refused_topics=accounts.refused_topics,
                       broker_refused_client_ids=accounts.refused_client_ids)
        return out

    def kick(self, meter_no):
        """Something for the meter was recorded (a recharge): the bridge fetches and sends."""
        if self.bridge is not None:
            self.bridge.kick(meter_no)

    def meter_registered(self, meter_no, device_key):
        """A meter was just registered: its broker login and, when the cloud keeps
        mosquitto's password file, the meter added to it and mosquitto reloaded."""
        if self.settings.mosquitto_password_file:
            from cloud.link.mosquitto import add_password
            add_password(self.settings.mosquitto_password_file, meter_no,
                         meter_broker_password(meter_no, device_key),
                         self.settings.mosquitto_pid_file)
        return meter_credentials(meter_no, device_key)
