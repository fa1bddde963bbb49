"""Who may use the meter link's broker, and where: the bridge's account, each meter's account
(a password derived from its device key) and the protocol's ACL rule. Plain Python: the
in-process broker (cloud/link/broker.py) and the mosquitto files (cloud/link/mosquitto.py)
both apply what is decided here."""

import hashlib
import hmac

BRIDGE_USERNAME = "mita-bridge"
_PASSWORD_CONTEXT = b"mita mqtt password v1\n"


def bridge_logins(instances=1):
    """The bridges' logins for `instances` cloud instances on one broker: one login (and so
    one client id and one session) each. Lower case and a dash: no meter number (upper-case
    letters and digits) can ever be one of them."""
    if instances <= 1:
        return [BRIDGE_USERNAME]
    return ["%s-%d" % (BRIDGE_USERNAME, n) for n in range(1, instances + 1)]


def is_bridge_login(username):
    """A name `bridge_logins` makes (the password file keeps every instance's line)."""
    if username == BRIDGE_USERNAME:
        return True
    head, _, number = (username or "").rpartition("-")
    return head == BRIDGE_USERNAME and number.isascii() and number.isdigit()


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


# The protocol's ACL, by direction (docs/protocol.md): what a meter may publish under
# meters/<its id>/ (its last will goes to status), and what it may subscribe to there. Only the
# bridge's login may publish commands (recharge, tariff, sync) or read another meter's topics.
METER_PUBLISHES = ("status", "telemetry", "history", "recharge/ack", "tariff/ack")
METER_SUBSCRIBES = ("recharge", "tariff", "sync", "history/ack")
PUBLISH, SUBSCRIBE = "publish", "subscribe"


def _meter_login(username):
    return bool(username) and not any(c in username for c in "+#/")


def topic_allowed(username, topic, bridge_username, action=PUBLISH):
    """May `username` publish to (action PUBLISH) or subscribe to (SUBSCRIBE) `topic`? The
    bridge anywhere; a meter only the exact topics of its own direction (no wildcards)."""
    if username == bridge_username:
        return True
    if not _meter_login(username) or not isinstance(topic, str):
        return False
    prefix = "meters/%s/" % username
    if not topic.startswith(prefix):
        return False
    return topic[len(prefix):] in (METER_PUBLISHES if action == PUBLISH else METER_SUBSCRIBES)


def client_id_allowed(username, client_id):
    """Client ids are bound to logins: every client, the bridge included, connects with its
    own user name as client id, so no login can take over another's session."""
    return bool(client_id) and client_id == username



class StoreAccounts:
    """Broker accounts backed by the store: meters by their derived password, the bridge by
    its own. Registration needs no step here: a new meter can connect at once."""

    def __init__(self, store, bridge_username, bridge_password):
        self.store = store
        self.bridge_username = bridge_username
        self.bridge_password = bridge_password
        self.refused = 0           # logins refused (bad password, unknown meter)
        self.refused_topics = 0    # publishes and subscriptions outside the ACL
        self.refused_client_ids = 0  # a login that tried another client's id

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

    def allowed(self, username, topic, action=PUBLISH):
        ok = topic_allowed(username, topic, self.bridge_username, action)
        if not ok:
            self.refused_topics += 1
        return ok

    def client_id_ok(self, username, client_id):
        ok = client_id_allowed(username, client_id)
        if not ok:
            self.refused_client_ids += 1
        return ok
