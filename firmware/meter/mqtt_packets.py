# MQTT 3.1.1 packets as bytes, and back: the pure encoding layer under meter.mqtt (no sockets,
# no clocks), so every packet can be tested byte for byte under both interpreters.
import struct
from micropython import const

CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
SUBSCRIBE = const(8)
SUBACK = const(9)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

_MAX_LENGTH = const(268435455)  # the largest remaining length four length bytes can carry
_MAX_PID = const(65535)

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

# CONNACK return codes (3.1.1 section 3.2.2.3), for log lines a person can read.
REFUSALS = {1: "bad protocol version", 2: "client id rejected", 3: "server unavailable",
            4: "bad user name or password", 5: "not authorised"}


class PacketError(ValueError):
    """Bytes that are not the packet they claim to be."""


def _utf8(text):
    data = text.encode() if type(text) is str else bytes(text)
    if len(data) > _MAX_PID:
        raise PacketError("string longer than 65535 bytes")
    return struct.pack("!H", len(data)) + data


def _check_pid(pid):
    if type(pid) is not int or not (1 <= pid <= _MAX_PID):
        raise PacketError("packet id %r out of 1..65535" % (pid,))


def encode_length(n):
    """The variable-length remaining-length field: 7 bits a byte, high bit = more follows."""
    if n < 0 or n > _MAX_LENGTH:
        raise PacketError("remaining length %d out of range" % n)
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_length(buf, offset=1):
    """(remaining length, offset of the body) from buf; None if buf stops mid-field."""
    n = 0
    shift = 0
    for i in range(4):
        if offset + i >= len(buf):
            return None
        byte = buf[offset + i]
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, offset + i + 1
        shift += 7
    raise PacketError("remaining length longer than four bytes")


def _packet(first_byte, body):
    return bytes([first_byte]) + encode_length(len(body)) + body


def connect(client_id, user=None, password=None, keepalive_s=60, clean=False, will=None):
    """CONNECT; will is (topic, payload, qos, retain) or None."""
    if not (0 <= keepalive_s <= _MAX_PID):
        raise PacketError("keepalive %r out of range" % (keepalive_s,))
    flags = 0x02 if clean else 0
    payload = _utf8(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _utf8(topic) + _utf8(message)
    if user:
        flags |= 0x80
        payload += _utf8(user)
        if password is not None:
            flags |= 0x40
            payload += _utf8(password)
    header = _utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s)
    return _packet(0x10, header + payload)


def publish_parts(topic, payload, qos=0, retain=False, dup=False, pid=0):
    """PUBLISH as (head, payload bytes): fixed header, length, topic and packet id, then the
    payload as it is. The client writes the two in turn, so a telemetry message is not copied
    twice more into one packet (a few hundred bytes, every 10 s, on a heap that fragments)."""
    if qos not in (0, 1):
        raise PacketError("qos %r not supported" % (qos,))
    if type(payload) is str:
        payload = payload.encode()
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup and qos else 0)
    head = _utf8(topic)
    if qos:
        _check_pid(pid)
        head += struct.pack("!H", pid)
    return bytes([first]) + encode_length(len(head) + len(payload)) + head, payload


def publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    head, payload = publish_parts(topic, payload, qos, retain, dup, pid)
    return head + bytes(payload)


def puback(pid):
    _check_pid(pid)
    return b"\x40\x02" + struct.pack("!H", pid)


def subscribe(pid, topics):
    """SUBSCRIBE for [(topic filter, max qos), ...]."""
    _check_pid(pid)
    if not topics:
        raise PacketError("subscribe needs at least one topic")
    body = struct.pack("!H", pid)
    for topic, qos in topics:
        body += _utf8(topic) + bytes([qos])
    return _packet(0x82, body)


def split(buf):
    """(packet type, flags, body, bytes after the packet) from the front of buf, or None if buf
    does not hold a whole packet yet."""
    if not buf:
        return None
    found = decode_length(buf, 1)
    if found is None:
        return None
    n, start = found
    if len(buf) < start + n:
        return None
    return buf[0] >> 4, buf[0] & 0x0F, bytes(buf[start:start + n]), bytes(buf[start + n:])


def parse_connack(body):
    """(session present, return code)."""
    if len(body) != 2 or body[0] & 0xFE:
        raise PacketError("bad CONNACK")
    return bool(body[0] & 1), body[1]


def parse_publish(flags, body):
    """(topic, payload, qos, retain, dup, pid); pid is 0 for QoS 0. The topic is bytes: a broker
    may send any bytes, and decoding them is the caller's choice."""
    qos = (flags >> 1) & 3
    if qos > 2:
        raise PacketError("PUBLISH with qos 3")
    if len(body) < 2:
        raise PacketError("PUBLISH too short")
    n = struct.unpack("!H", body[:2])[0]
    end = 2 + n
    pid = 0
    if qos:
        if len(body) < end + 2:
            raise PacketError("PUBLISH too short for its packet id")
        pid = struct.unpack("!H", body[end:end + 2])[0]
        payload_at = end + 2
    else:
        if len(body) < end:
            raise PacketError("PUBLISH too short for its topic")
        payload_at = end
    return body[2:end], body[payload_at:], qos, bool(flags & 1), bool(flags & 8), pid


def parse_pid(body):
    """The packet id of a PUBACK (or any packet whose body is only one)."""
    if len(body) != 2:
        raise PacketError("bad packet id field")
    return struct.unpack("!H", body)[0]


def parse_suback(body):
    """(pid, [granted qos or 0x80 per filter])."""
    if len(body) < 3:
        raise PacketError("SUBACK too short")
    return struct.unpack("!H", body[:2])[0], list(body[2:])
