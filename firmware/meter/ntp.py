# Wall-clock time from NTP while online, into the meter's one clock seam (app.clock.set).
# The ntptime module (or anything with its time() function) is passed in.
from micropython import const

_MIN_VALID_T = const(1704067200)  # 2024-01-01: an answer before this is not the time
_EPOCH_2000 = const(946684800)  # ports with a 2000 epoch answer in seconds since then


class TimeSync:
    """step(online) queries when due and returns how many ms to wait before the next step."""

    def __init__(self, clock, ntp, interval_s=21600, retry_s=60, poll_s=5, log=None):
        self.clock = clock
        self.ntp = ntp
        self.interval_s = interval_s
        self.retry_s = retry_s
        self.poll_s = poll_s
        self.log = log
        self.syncs = 0
        self.failures = 0
        self.last_t = 0  # Unix seconds of the last good answer
        self.last_step_s = 0  # how far that answer moved the clock
        self._wait_s = 0  # seconds until the next query is due

    def step(self, online):
        if not online:
            self._wait_s = 0  # query as soon as the link is back
            return self.poll_s * 1000
        if self._wait_s > 0:
            waited = min(self._wait_s, self.poll_s)
            self._wait_s -= waited
            return waited * 1000
        self.sync()
        return self.poll_s * 1000

    def sync(self):
        """Query once; True if the clock was set."""
        try:
            t = self.ntp.time()
        except Exception as exc:  # OSError, timeouts, a bad packet: all just mean "retry"
            return self._failed("ntp: %r" % (exc,))
        if type(t) is not int:
            return self._failed("ntp answered %r" % (t,))
        if t < _MIN_VALID_T:
            t += _EPOCH_2000
        if t < _MIN_VALID_T:
            return self._failed("ntp answered an impossible time %d" % t)
        self.last_step_s = t - self.clock.now()
        self.clock.set(t)
        self.last_t = t
        self.syncs += 1
        self._wait_s = self.interval_s
        if self.last_step_s > 2 or self.last_step_s < -2:
            self._log("info", "clock set by NTP, moved %d s", self.last_step_s)
        return True

    async def run(self, network_up=None):
        """network_up: an asyncio Event set while the network is up (None: always up). While
        it is down this waits for it rather than polling, so the first query follows at once."""
        import asyncio
        while True:
            if network_up is not None and not network_up.is_set():
                self._wait_s = 0
                await network_up.wait()
            await asyncio.sleep(self.step(True) / 1000)

    def _failed(self, why):
        self.failures += 1
        self._wait_s = self.retry_s
        self._log("warn", "%s", why)
        return False

    def _log(self, level, msg, *args):
        if self.log is not None:
            getattr(self.log, level)(msg, *args)
