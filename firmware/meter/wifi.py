# The meter's WiFi station: connect, notice loss, reconnect with capped backoff, up/down events.
# The WLAN object is passed in (network.WLAN(network.STA_IF) on the device). Metering never waits
# for it: this runs as its own task and only the cloud link looks at `up`.
import asyncio
from micropython import const

_POLL_MS = const(1000)  # how often a connected station is checked
_STEP_MS = const(250)  # how often a connecting station is checked
_CONNECT_TIMEOUT_MS = const(20000)


class WifiManager:
    """step() does one check and returns how many ms to wait before the next; run() loops it.
    Elapsed time is the sum of those waits, so the manager reads no clock."""

    def __init__(self, wlan, ssid, password, poll_ms=_POLL_MS, step_ms=_STEP_MS,
                 connect_timeout_ms=_CONNECT_TIMEOUT_MS, backoff_min_ms=1000,
                 backoff_max_ms=60000, log=None):
        self.wlan = wlan
        self.ssid = ssid
        self.password = password
        self.poll_ms = poll_ms
        self.step_ms = step_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.log = log
        self.up = asyncio.Event()
        self.down = asyncio.Event()
        self.down.set()
        self.is_up = False
        self.connects = 0
        self.losses = 0
        self.failures = 0  # consecutive failed attempts
        self._connecting = False
        self._waited_ms = 0
        self._running = False

    def status(self):
        """The reference schema's wifi_status."""
        return "connected" if self.is_up else "disconnected"

    def step(self):
        if not self.ssid:
            return self.poll_ms  # not configured: the meter runs offline
        if self._connected():
            if not self.is_up:
                self._mark_up()
            return self.poll_ms
        if self.is_up:
            self._mark_down()
        if self._connecting:
            self._waited_ms += self.step_ms
            if self._waited_ms < self.connect_timeout_ms:
                return self.step_ms
            return self._failed("no connection after %d ms" % self._waited_ms)
        try:
            self.wlan.active(True)
            self.wlan.connect(self.ssid, self.password)
        except OSError as exc:  # the driver refuses while it is still busy: same as a failure
            return self._failed("connect: %r" % (exc,))
        self._connecting = True
        self._waited_ms = 0
        return self.step_ms

    async def run(self):
        self._running = True
        while self._running:
            await asyncio.sleep(self.step() / 1000)

    def stop(self):
        self._running = False

    def _connected(self):
        try:
            return bool(self.wlan.isconnected())
        except OSError:
            return False

    def _mark_up(self):
        self.is_up = True
        self._connecting = False
        self.failures = 0
        self.connects += 1
        self.down.clear()
        self.up.set()
        self._log("info", "wifi up (%s)", self.ssid)

    def _mark_down(self):
        self.is_up = False
        self.losses += 1
        self.up.clear()
        self.down.set()
        self._log("warn", "wifi lost")

    def _failed(self, why):
        self._connecting = False
        self.failures += 1
        try:
            self.wlan.disconnect()  # stop the driver's own attempt before ours starts again
        except OSError:
            pass
        delay = min(self.backoff_min_ms << min(self.failures - 1, 10), self.backoff_max_ms)
        self._log("warn", "wifi: %s; retry in %d ms", why, delay)
        return delay

    def _log(self, level, msg, *args):
        if self.log is not None:
            getattr(self.log, level)(msg, *args)
