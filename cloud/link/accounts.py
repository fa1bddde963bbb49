"""Who may use the meter link's broker, and where: the bridge's account, each meter's account
(a password derived from its device key) and the protocol's ACL rule. Plain Python: the
in-process broker (cloud/link/broker.py) and the mosquitto files (cloud/link/mosquitto.py)
both apply what is decided here."""

import hashlib
import hmac

BRIDGE_USERNAME = "mita-bridge"
_PASSWORD_CONTEXT = b"mita mqtt password v1\n"


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
