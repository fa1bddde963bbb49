"""The bridge's incoming message queue (aiomqtt's `queue_type`). aiomqtt reads the socket as
fast as the broker sends and queues every message without limit, so a cloud slower than its
fleet for a while held every telemetry message it had not reached yet: memory that grew with
time, not with the fleet. Telemetry is replaceable (the bridge keeps only the newest per
meter), so here it never waits: it is coalesced the moment it is read, and the queue holds only
the messages that each need handling (status, acks, history), whose rate the fleet bounds.
Each is queued with a stamp taken as it is read (its arrival, and how much telemetry from
that meter had been read by then): a message handled after newer telemetry was taken can
tell that it is the older of the two."""

import asyncio


class InboundQueue(asyncio.Queue):
    """`take(topic, payload)` is given every telemetry message at once (it must not block);
    every other message is queued in arrival order as `(message, stamp(topic))`."""

    def __init__(self, take, stamp, maxsize=0):
        super().__init__(maxsize)
        self._take = take
        self._stamp = stamp

    def put_nowait(self, message):
        topic = str(message.topic)
        if topic.endswith("/telemetry"):
            self._take(topic, message.payload)
            return
        super().put_nowait((message, self._stamp(topic)))
