# Shared helpers for firmware tests. Runs under CPython (pytest) and the MicroPython unix
# port (tests/firmware/mpy_runner.py), so it uses nothing either interpreter lacks.


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail the test if it raised nothing."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("expected %s" % exc_type.__name__)


def tmpdir(name):
    """A fresh empty folder for one test, on both interpreters: under $MITA_FWTEST_TMP (the
    pytest runner of the MicroPython runs gives each run its own), else under /tmp per process
    (MicroPython's os has no getpid: two runs at once would share, and break, each other's)."""
    import os
    base = os.getenv("MITA_FWTEST_TMP") if hasattr(os, "getenv") else None
    if not base:
        base = "/tmp/mita-fwtest-%d" % os.getpid() if hasattr(os, "getpid") else (
            "/tmp/mita-fwtest-" + "".join("%02x" % b for b in os.urandom(4)))
    for part in (base, base + "/" + name):
        try:
            os.mkdir(part)
        except OSError:
            pass
    path = base + "/" + name
    for entry in os.listdir(path):
        os.remove(path + "/" + entry)
    return path


class FakeUART:
    """A UART whose replies are scripted: each write() pops the next reply into the RX buffer.

    A reply of None means the device stays silent (a timeout); bytes are returned as given, so
    tests can script short frames, bad CRCs and garbage.
    """

    def __init__(self, replies=None):
        self.written = []
        self.replies = list(replies or [])
        self._rx = b""

    def write(self, buf):
        self.written.append(bytes(buf))
        if self.replies:
            reply = self.replies.pop(0)
            if reply is not None:
                self._rx += bytes(reply)
        return len(buf)

    def any(self):
        return len(self._rx)

    def read(self, n=-1):
        if not self._rx:
            return None
        if n is None or n < 0:
            n = len(self._rx)
        out, self._rx = self._rx[:n], self._rx[n:]
        return out

    def readinto(self, buf, n=-1):
        data = self.read(len(buf) if n is None or n < 0 else n)
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)


class FakePin:
    """An output/input pin that remembers its value and every value written to it."""

    IN = 1
    OUT = 3
    PULL_UP = 1
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, value=0):
        self._value = value
        self.history = []
        self.handler = None
        self.trigger = None

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        self.history.append(self._value)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, v=None):
        return self.value(v)

    def irq(self, handler=None, trigger=None):
        self.handler = handler
        self.trigger = trigger

    def fire(self):
        """Deliver one interrupt, as the hardware would."""
        if self.handler is not None:
            self.handler(self)


class FakeI2C:
    """Records every writeto(addr, buf) as (addr, bytes)."""

    def __init__(self, devices=(0x27,)):
        self.devices = list(devices)
        self.writes = []

    def scan(self):
        return list(self.devices)

    def writeto(self, addr, buf, stop=True):
        if addr not in self.devices:
            raise OSError(19)  # ENODEV, as MicroPython raises for a missing device
        self.writes.append((addr, bytes(buf)))
        return 1
