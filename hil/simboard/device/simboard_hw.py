# The simulated board inside the board process: the simulator's SimBoard, with the watchdog,
# the RTC and the rig settings reported to the harness, the part that outlives the process.
import sys

from sim_board import SimBoard


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
