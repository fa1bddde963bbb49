# The access point a meter's WiFi station sees, with scripted outages, and the station's
# status as the ESP32 port reports it (status codes are the ESP32's network.STAT_* values).

try:
    from simulator.devices.outages import Outages
except ImportError:  # MicroPython: simulator/ itself is on MICROPYPATH
    from devices.outages import Outages

STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_CONNECT_FAIL = 203


class AccessPoint:
    def __init__(self, ssid="mita-net", key="mita-pass", connect_ms=1500, subnet="192.168.4"):
        self.ssid = ssid
        self.key = key
        self.connect_ms = connect_ms
        self.subnet = subnet
        self.outages = Outages()

    def schedule_outage(self, start_ms, duration_ms=None):
        self.outages.schedule(start_ms, duration_ms)

    def up(self, t):
        return not self.outages.down(t)

    def back_since(self, t):
        """When the AP last came back up at or before t (0 if it never went down)."""
        return self.outages.last_end(t)

    def restore(self, t):
        self.outages.restore(t)

    def next_change(self, t):
        return self.outages.next_change(t)


class Station:
    """The meter's STA interface: active flag, the last connect() request, its status."""

    def __init__(self, ap):
        self.ap = ap
        self.active = False
        self.request = None  # (ssid, key, requested at ms)
        self.hostname = "mita"
        self.reconnects = -1  # the ESP32 port retries for ever by default

    def connect(self, ssid, key, now_ms):
        self.request = (ssid, key, now_ms)

    def disconnect(self):
        self.request = None

    def status(self, now_ms):
        if not self.active or self.request is None:
            return STAT_IDLE
        ssid, key, since = self.request
        ap = self.ap
        settled = now_ms - since >= ap.connect_ms
        if ssid != ap.ssid:
            return STAT_NO_AP_FOUND if settled else STAT_CONNECTING
        if not ap.up(now_ms):
            return STAT_NO_AP_FOUND if settled and self.reconnects == 0 else STAT_CONNECTING
        if key != ap.key:
            return STAT_WRONG_PASSWORD if settled else STAT_CONNECTING
        if now_ms - max(since, ap.back_since(now_ms)) >= ap.connect_ms:
            return STAT_GOT_IP
        return STAT_CONNECTING

    def connected(self, now_ms):
        return self.status(now_ms) == STAT_GOT_IP
