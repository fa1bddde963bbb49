"""How the bridge connects: one aiomqtt client on the bridge's login (client id = login), and
the topic filters it subscribes to. With a share group (MITA_MQTT_SHARE_GROUP, several cloud
instances on one broker) the client speaks MQTT 5 and subscribes to `$share/<group>/...`, so
the broker hands each meter message to one instance of the group."""

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

METER_TOPICS = ("meters/+/status", "meters/+/telemetry", "meters/+/history",
                "meters/+/recharge/ack", "meters/+/tariff/ack")


def subscriptions(share_group=""):
    """The bridge's topic filters, each in the share group when there is one."""
    if not share_group:
        return list(METER_TOPICS)
    return ["$share/%s/%s" % (share_group, topic) for topic in METER_TOPICS]


def make_client(broker, queue_type=None):
    """broker: dict(host, port, username, password, client_id, tls, share_group,
    session_expiry_s); queue_type: the class of the client's incoming queue (aiomqtt's own
    when None). The session is persistent either way: messages for the bridge wait at
    the broker while it restarts. MQTT 3.1.1 keeps a session until the next clean one; MQTT 5
    keeps it for the session expiry interval, which must be set (0 would end it at once)."""
    tls = None
    if broker.get("tls"):
        import ssl
        tls = ssl.create_default_context()
    common = dict(username=broker.get("username"), password=broker.get("password"),
                  identifier=broker.get("client_id") or broker.get("username"),
                  keepalive=broker.get("keepalive", 60), tls_context=tls,
                  max_inflight_messages=1000, timeout=broker.get("timeout", 10))
    if queue_type is not None:
        common["queue_type"] = queue_type
    if not broker.get("share_group"):
        return aiomqtt.Client(broker["host"], broker["port"], clean_session=False, **common)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = int(broker.get("session_expiry_s", 300))
    return aiomqtt.Client(broker["host"], broker["port"], clean_start=False,
                          protocol=aiomqtt.ProtocolVersion.V5, properties=properties,
                          **common)


def forget_disconnect(client):
    """aiomqtt keeps why a session ended in a future that nobody awaits once the session is
    over; seen here, it is not logged later as "Future exception was never retrieved" by the
    garbage collector (whose log line, on CPython 3.11, can break a parse running meanwhile)."""
    gone = getattr(client, "_disconnected", None)
    if gone is not None and gone.done() and not gone.cancelled():
        gone.exception()
