# One bytearray, allocated once, that json.dump writes a message into, so the MQTT client sends
# the message from it: telemetry every 10 s made json.dumps grow a str about 16 bytes at a time
# (a realloc each step), then a bytes copy of it, on a 32-bit heap that fragments over weeks;
# that allocation was what a month under a heap cap died of (docs/benchmarks.md).
import io
import json

from micropython import const

SIZE = const(768)  # a telemetry message is about 490 bytes, a status about 230


class JsonBuffer(io.IOBase):
    """json.dump's target (MicroPython hands write() a bytearray over its own C buffer, valid
    only during the call; CPython hands it str chunks): copied into the one buffer. A message
    longer than the buffer is still measured to its end, but not kept."""

    def __init__(self, size=SIZE):
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)
        self.size = 0  # bytes of the last message, whether it fitted or not

    def write(self, data):
        if type(data) is str:
            data = data.encode()
        n = len(data)
        end = self.size + n
        if end <= len(self._buf):
            self._buf[self.size:end] = data
        self.size = end
        return n

    def dump(self, msg):
        """msg's JSON as a view of the buffer (good until the next dump), or None if it is
        longer than the buffer."""
        self.size = 0
        json.dump(msg, self)
        if self.size > len(self._buf):
            return None
        return self._view[:self.size]
