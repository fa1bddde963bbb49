# MQTT packets off an asyncio stream, for meter.mqtt: one packet at a time, and an oversized one
# read past in small steps (never held whole) keeping only what its PUBACK needs.
from micropython import const

from meter.mqtt_packets import PUBLISH, PacketError

_SKIP_CHUNK = const(256)


async def read_exactly(reader, n):
    data = await reader.readexactly(n)
    if len(data) != n:
        raise OSError("connection closed")
    return data


async def read_packet(reader, max_packet):
    """(type, flags, body). A body over max_packet is read past and returned as an int: the
    PUBLISH's packet id, or 0 if it has none to acknowledge."""
    first = (await read_exactly(reader, 1))[0]
    n = 0
    shift = 0
    while True:
        byte = (await read_exactly(reader, 1))[0]
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 21:
            raise PacketError("remaining length longer than four bytes")
    if n > max_packet:
        return first >> 4, first & 0x0F, await _skip(reader, first, n)
    body = await read_exactly(reader, n) if n else b""
    return first >> 4, first & 0x0F, body


async def _skip(reader, first, n):
    pid = 0
    if first >> 4 == PUBLISH and (first >> 1) & 3 and n >= 4:
        head = await read_exactly(reader, 2)
        topic_len = head[0] << 8 | head[1]
        n -= 2
        while topic_len > 0 and n > 0:
            step = min(topic_len, _SKIP_CHUNK)
            await read_exactly(reader, step)
            topic_len -= step
            n -= step
        if n >= 2:
            ids = await read_exactly(reader, 2)
            pid = ids[0] << 8 | ids[1]
            n -= 2
    while n > 0:
        step = min(n, _SKIP_CHUNK)
        await read_exactly(reader, step)
        n -= step
    return pid
