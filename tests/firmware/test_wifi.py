# WiFi manager (meter.wifi) driven step by step against a scripted WLAN.
from meter.wifi import WifiManager


class FakeWLAN:
    """network.WLAN's station calls; `link` says whether the AP would have us, `delay` how many
    isconnected() polls a connect takes."""

    def __init__(self, link=True, delay=2):
        self.link = link
        self.delay = delay
        self.calls = []
        self._countdown = None
        self._connected = False
        self.refuse_connect = False

    def active(self, on=None):
        self.calls.append(("active", on))

    def connect(self, ssid, key):
        self.calls.append(("connect", ssid, key))
        if self.refuse_connect:
            raise OSError("Wifi Internal Error")
        self._countdown = self.delay

    def disconnect(self):
        self.calls.append(("disconnect",))
        self._countdown = None
        self._connected = False

    def isconnected(self):
        if not self.link:
            self._connected = False
        elif self._countdown is not None:
            self._countdown -= 1
            if self._countdown <= 0:
                self._connected = True
                self._countdown = None
        return self._connected

    def drop(self):
        self._connected = False


def manager(wlan, **kw):
    return WifiManager(wlan, "mita-net", "secret", poll_ms=1000, step_ms=100,
                       connect_timeout_ms=500, backoff_min_ms=1000, backoff_max_ms=8000, **kw)


def test_connects_then_reports_up_once():
    wlan = FakeWLAN(delay=2)
    w = manager(wlan)
    assert w.step() == 100 and ("connect", "mita-net", "secret") in wlan.calls
    assert w.step() == 100 and not w.is_up
    assert w.step() == 1000 and w.is_up and w.up.is_set() and not w.down.is_set()
    assert w.step() == 1000 and w.connects == 1 and w.status() == "connected"
    assert [c for c in wlan.calls if c[0] == "connect"] == [("connect", "mita-net", "secret")]


def test_loss_is_noticed_and_the_station_reconnects():
    wlan = FakeWLAN(delay=1)
    w = manager(wlan)
    w.step()
    w.step()
    assert w.is_up
    wlan.drop()
    assert w.step() == 100  # noticed, and already reconnecting
    assert w.losses == 1 and not w.is_up and w.down.is_set() and w.status() == "disconnected"
    w.step()
    assert w.is_up and w.connects == 2


def test_failed_attempts_back_off_doubling_to_the_cap_then_reset():
    wlan = FakeWLAN(link=False)
    w = manager(wlan)
    waits = []
    for _ in range(60):
        waits.append(w.step())
    backoffs = [d for d in waits if d >= 1000]
    assert backoffs[:5] == [1000, 2000, 4000, 8000, 8000]
    assert ("disconnect",) in wlan.calls
    wlan.link = True
    while not w.is_up:
        w.step()
    assert w.failures == 0


def test_a_driver_that_refuses_connect_is_a_failure_not_a_crash():
    wlan = FakeWLAN()
    wlan.refuse_connect = True
    w = manager(wlan)
    assert w.step() == 1000 and w.failures == 1
    wlan.refuse_connect = False
    w.step()
    w.step()
    w.step()
    assert w.is_up


def test_no_ssid_means_offline_without_touching_the_radio():
    wlan = FakeWLAN()
    w = WifiManager(wlan, "", "")
    for _ in range(3):
        assert w.step() == 1000
    assert wlan.calls == [] and not w.is_up


def test_run_loop_under_asyncio_brings_the_link_up():
    import asyncio
    wlan = FakeWLAN(delay=3)
    w = WifiManager(wlan, "mita-net", "secret", poll_ms=1, step_ms=1)

    async def main():
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(w.up.wait(), 2)
        w.stop()
        await task

    asyncio.run(main())
    assert w.connects == 1
