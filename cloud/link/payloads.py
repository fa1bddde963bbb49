"""The meter-cloud MQTT payloads (docs/protocol.md): parse what meters send, build what the
cloud sends, and the recharge floor the cloud tells a meter in `sync`. No I/O here."""

import datetime
import json

from cloud.firmware_source import load_firmware_module

# Defined once, in the firmware (firmware/meter/protocol.py): the cloud runs that source.
_PROTOCOL = load_firmware_module("protocol")
if _PROTOCOL is None:
    raise ImportError("firmware/meter/protocol.py is missing: the cloud ships beside the firmware")
PROTOCOL_VERSION = _PROTOCOL["PROTOCOL_VERSION"]
MAX_PAYLOAD_BYTES = _PROTOCOL["MAX_PAYLOAD_BYTES"]
RECHARGE_WINDOW = _PROTOCOL["RECHARGE_WINDOW"]  # seqs further past a meter's floor are refused
# Signed commands: the meter's own checker, run here to sign (firmware/meter/command_auth.py).
_AUTH = load_firmware_module("command_auth")
if _AUTH is None:
    raise ImportError("firmware/meter/command_auth.py is missing")
command_key = _AUTH["command_key"]  # (device_key, meter_no) -> the key commands are signed with
opened = _AUTH["opened"]            # (key, payload) -> the signed JSON bytes, or None
ACK_STATUSES = ("applied", "duplicate", "rejected")
# Rejections that say "not now" rather than "never": the recharge stays pending.
RETRYABLE_REASONS = ("ahead_of_window", "storage_error")
SETTLED = ("delivered", "rejected")  # recharge statuses the meter has answered for good
_STATUS_TEXT = 32


class Malformed(ValueError):
    """Not a payload of the protocol: counted and dropped."""


class Oversized(Malformed):
    """Longer than a meter may send."""


class BadRecord(ValueError):
    """A history record with an int seq but unusable fields: acknowledged with ok false."""

    def __init__(self, seq, message):
        super().__init__(message)
        self.seq = seq


def decode(payload):
    """The JSON object of a payload of a known version, or Malformed."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Oversized("payload of %d bytes" % len(payload))
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("not JSON") from None
    if not isinstance(msg, dict):
        raise Malformed("not a JSON object")
    version = msg.get("v")
    if type(version) is not int or not 1 <= version <= PROTOCOL_VERSION:
        raise Malformed("no known version field v")
    return msg


def meter_of(topic):
    """The meter a topic names, or "" when it names none (routing only: never raises)."""
    return topic.split("/")[1] if topic.count("/") >= 2 else ""


def split_topic(topic):
    """meters/<id>/<kind> -> (id, kind), kind possibly two levels ("recharge/ack")."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != "meters" or not parts[1]:
        raise Malformed("topic %r is not under meters/<id>/" % topic)
    return parts[1], "/".join(parts[2:])


def _int(msg, name, required=True):
    value = msg.get(name)
    if value is None and not required:
        return None
    if type(value) is not int:
        raise Malformed("%s must be an integer" % name)
    return value


def _text(value, name):
    if not isinstance(value, str) or len(value) > _STATUS_TEXT:
        raise Malformed("%s must be a short string" % name)
    if not value.isprintable():  # control and bidi characters: as the HTTP status report
        raise Malformed("%s may hold only printable characters" % name)
    return value


def parse_status(msg):
    """The meter's status fields to merge into the store's `status`; state is required."""
    state = msg.get("state")
    if state not in ("online", "offline"):
        raise Malformed("state must be online or offline")
    fields = {"state": state,
              "mqtt_status": "connected" if state == "online" else "disconnected"}
    if "load_connected" in msg:
        if type(msg["load_connected"]) is not bool:
            raise Malformed("load_connected must be true or false")
        fields["load_connected"] = msg["load_connected"]
    for name in ("wifi_status", "firmware", "boot", "reason"):
        if msg.get(name) is not None:
            fields[name] = _text(msg[name], name)
    version = _int(msg, "tariff_version", required=False)
    if version is not None:
        fields["tariff_version"] = version
    return fields


def parse_telemetry(msg):
    """(balance_cents or None, alerts {name: bool}). `connection_lost` is the cloud's own."""
    balance = _int(msg, "balance_cents", required=False)
    alerts = msg.get("alerts", {})
    if not isinstance(alerts, dict):
        raise Malformed("alerts must be an object")
    flags = {}
    for name, value in alerts.items():
        if type(value) is not bool:
            raise Malformed("alert %r must be true or false" % (name,))
        if (name != "connection_lost" and isinstance(name, str) and 0 < len(name) <= 40
                and name.replace("_", "").isalnum() and name.isascii()):
            flags[name] = value
    return balance, flags


def parse_history(msg):
    """{seq, date, hour (int), wh, cost_cents}; Malformed without an int seq, else BadRecord."""
    seq = _int(msg, "seq")
    date, hour = msg.get("date"), msg.get("hour")
    if isinstance(hour, str) and len(hour) == 2 and hour.isdigit():
        hour = int(hour)
    if not (_is_date(date) and type(hour) is int and 0 <= hour <= 23):
        raise BadRecord(seq, "date/hour are not a local YYYY-MM-DD and 00..23")
    wh, cost = msg.get("wh"), msg.get("cost_cents")
    if type(wh) is not int or type(cost) is not int or wh < 0 or cost < 0:
        raise BadRecord(seq, "wh and cost_cents must be non-negative integers")
    return {"seq": seq, "date": date, "hour": hour, "wh": wh, "cost_cents": cost}


def _is_date(text):
    if not isinstance(text, str) or len(text) != 10:
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_recharge_ack(msg):
    """(seq, status, reason, balance_cents or None)."""
    seq = _int(msg, "seq")
    status = msg.get("status")
    if status not in ACK_STATUSES:
        raise Malformed("status must be one of %s" % ", ".join(ACK_STATUSES))
    reason = msg.get("reason")
    reason = _text(reason, "reason") if reason is not None else None
    return seq, status, reason, _int(msg, "balance_cents", required=False)


def parse_tariff_ack(msg):
    """(version, ok, reason)."""
    version = _int(msg, "version")
    if type(msg.get("ok")) is not bool:
        raise Malformed("ok must be true or false")
    reason = msg.get("reason")
    return version, msg["ok"], reason if isinstance(reason, str) else None


def _signed(key, meter, cmd, body):
    """Every message the cloud sends a meter names its command and the meter, and is signed
    with that meter's command key (docs/protocol.md "Signed commands")."""
    text = json.dumps(dict(v=PROTOCOL_VERSION, cmd=cmd, meter=meter, **body),
                      separators=(",", ":")).encode()
    return _AUTH["sign"](key, text)


def recharge_message(recharge, meter, key):
    body = {"id": recharge["id"], "seq": recharge["seq"],
            "amount_cents": recharge["amount_cents"], "source": "cloud"}
    if recharge.get("token_count") is not None:
        # the count of this payment's token: the meter credits the recharge or the typed
        # token, whichever comes first, never both (docs/recharge-and-persistence.md)
        body["token_count"] = recharge["token_count"]
    return _signed(key, meter, "recharge", body)


def sync_message(floor, meter, key):
    return _signed(key, meter, "sync", {"recharge_floor": floor})


def history_ack(seq, meter, key, ok=True):
    return _signed(key, meter, "history/ack", {"seq": seq} if ok else {"seq": seq, "ok": False})


def tariff_message(tariff, meter, key):
    return _signed(key, meter, "tariff", {"tariff": tariff})


def recharge_floor(recharges, issued_seq, void_seqs=()):
    """The highest seq such that it and every seq below it is settled (delivered or rejected:
    the meter answered for good) or void (a number the store gave out to no credit).

    recharges: the meter's recharge records; issued_seq: the meter's last seq given out."""
    status = {r["seq"]: r["status"] for r in recharges}
    void = set(void_seqs)
    floor = 0
    while floor < issued_seq:
        nxt = floor + 1
        if status.get(nxt) in SETTLED or (nxt not in status and nxt in void):
            floor = nxt
        else:
            break
    return floor


def floor_needs_sync(recharges, synced, floor):
    """Must the cloud send `floor` to a meter last told `synced` (None: not since it came
    online)? Only if the floor passes a seq the meter did not apply itself (void, or rejected
    for good): over its own applied seqs the meter's floor slides by itself
    (meter/recharge.py), so a sync after every ack would only delay the next recharge."""
    if floor <= 0:
        return False
    if synced is None:
        return True
    delivered = {r["seq"] for r in recharges if r["status"] == "delivered"}
    return any(seq not in delivered for seq in range(synced + 1, floor + 1))


def missing_seqs(recharges, issued_seq):
    """Seqs 1..issued_seq with no recharge record: gaps, void once they stay missing."""
    have = {r["seq"] for r in recharges}
    top = max([issued_seq] + list(have))
    return [s for s in range(1, top + 1) if s not in have]


class VoidSeqs:
    """Per meter: seqs the store gave out to no recharge become void once they have stayed
    missing for `after_s` (a writer that is merely slow must have time to finish)."""

    def __init__(self, after_s):
        self.after_s = after_s
        self._first_seen = {}  # meter -> {missing seq: time first seen}
        self._void = {}        # meter -> set of seqs declared void

    def update(self, meter, recharges, issued_seq, now):
        """(void seqs, newly void seqs, seqs declared void that got a recharge after all)."""
        missing = set(missing_seqs(recharges, issued_seq))
        seen = self._first_seen.get(meter, {})
        void = self._void.setdefault(meter, set())
        revived = sorted(void - missing)
        void -= set(revived)
        waiting = {seq: seen.get(seq, now) for seq in missing if seq not in void}
        fresh = sorted(seq for seq, first in waiting.items() if now - first >= self.after_s)
        for seq in fresh:
            void.add(seq)
            del waiting[seq]
        self._first_seen[meter] = waiting
        return void, fresh, revived

    def waiting(self, meter):
        """True while the meter has missing seqs not yet void."""
        return bool(self._first_seen.get(meter))
