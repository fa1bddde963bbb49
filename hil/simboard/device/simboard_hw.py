# The simulated board inside the board process: the simulator's SimBoard, with the watchdog,
# the RTC and the rig settings reported to the harness, the part that outlives the process.
import select
import sys

from sim_board import SimBoard

_QUIET_MS = 10  # a Modbus RTU frame ends when the line has been quiet this long (9600 baud)


class SideChannel:
    """Lines to the harness on stderr; the serial line (stdout) stays the board's own."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def send(self, *words):
        self.stream.write(" ".join([str(w) for w in words]) + "\n")


class HilBoard(SimBoard):
    def __init__(self, world, flash_dir, clock, rig, channel, cause, rtc_epoch_ms):
        SimBoard.__init__(self, world, flash_dir, clock, rig=rig,
                          meter_id=(rig or {}).get("meter_id", "sim-0001"))
        self.channel = channel
        # The process is new at every reset; the cause is what the harness saw happen.
        self.reset_cause = cause
        if rtc_epoch_ms:
            SimBoard.rtc_set_epoch_ms(self, rtc_epoch_ms)
        self._uart_dev = None

    def wire_uart(self, device_path):
        """The PZEM UART goes out on a real serial device (opened before "/" becomes the
        flash): the module answering is whatever is at the other end of that cable."""
        self._uart_dev = open(device_path, "r+b")
        self._uart_poll = select.poll()
        self._uart_poll.register(self._uart_dev, select.POLLIN)

    def uart_exchange(self, uart_id, settings, buf):
        if self._uart_dev is None:
            return SimBoard.uart_exchange(self, uart_id, settings, buf)
        self.check_alive()
        want = self.rig["uart"]
        if uart_id != want["id"] or settings.get("tx") != want.get("tx") or \
                settings.get("rx") != want.get("rx"):
            return b""  # not the UART the cable is soldered to
        while self._uart_poll.poll(0):  # a late reply to an earlier request: stale
            self._uart_dev.read(1)
        self._uart_dev.write(buf)
        reply = bytearray()
        wait = settings.get("timeout") or 100
        while self._uart_poll.poll(wait):
            reply.extend(self._uart_dev.read(1))
            wait = _QUIET_MS
        return bytes(reply)

    def wdt_start(self, timeout_ms):
        SimBoard.wdt_start(self, timeout_ms)
        self.channel.send("wdt", self.wdt_timeout)

    def wdt_feed(self):
        SimBoard.wdt_feed(self)
        if self.wdt_timeout is not None:
            self.channel.send("feed")

    def rtc_set_epoch_ms(self, epoch_ms):
        SimBoard.rtc_set_epoch_ms(self, epoch_ms)
        self.channel.send("rtc", int(epoch_ms))
