# The `network` module for the simulator (ESP32 port's WLAN API), backed by the current board's
# scripted access point. Runs under CPython and the MicroPython unix port.
try:
    from simulator import board_context as _ctx
    from simulator.devices import wifi as _wifi
except ImportError:  # MicroPython: simulator/ itself is on MICROPYPATH
    import board_context as _ctx
    from devices import wifi as _wifi

STA_IF = 0
AP_IF = 1
STAT_IDLE = _wifi.STAT_IDLE
STAT_CONNECTING = _wifi.STAT_CONNECTING
STAT_GOT_IP = _wifi.STAT_GOT_IP
STAT_NO_AP_FOUND = _wifi.STAT_NO_AP_FOUND
STAT_WRONG_PASSWORD = _wifi.STAT_WRONG_PASSWORD
STAT_CONNECT_FAIL = _wifi.STAT_CONNECT_FAIL
STAT_BEACON_TIMEOUT = 200
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

_hostname = ["mita"]


def hostname(name=None):
    if name is None:
        return _hostname[0]
    _hostname[0] = name
    return None


class WLAN:
    IF_STA = 0
    IF_AP = 1
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, interface_id=STA_IF):
        self._board = _ctx.current()
        self._if = interface_id
        self._station = self._board.station

    def _now(self):
        return self._board.clock.now_ms()

    def active(self, is_active=None):
        if is_active is None:
            return self._station.active
        self._board.check_alive()
        self._station.active = bool(is_active)
        if not is_active:
            self._station.request = None
        return None

    def connect(self, ssid=None, key=None, bssid=None):
        self._board.check_alive()
        if not self._station.active:
            raise OSError("Wifi Not Started")
        self._station.connect(ssid, key, self._now())
        self._board.kick()

    def disconnect(self):
        self._station.disconnect()

    def isconnected(self):
        return self._station.connected(self._now())

    def status(self, param=None):
        if param == "rssi":
            return -60 if self.isconnected() else 0
        return self._station.status(self._now())

    def scan(self):
        if not self._station.active:
            raise OSError("Wifi Not Started")
        ap = self._board.ap
        if not ap.up(self._now()):
            return []
        return [(ap.ssid.encode(), b"\x02\x00\x00\x00\x00\x01", 6, -60, AUTH_WPA2_PSK, False)]

    def ifconfig(self, config=None):
        if config is not None:
            return None
        if not self.isconnected():
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        last = 10 + self._board.unique_id()[0] % 200
        net = self._board.ap.subnet
        return ("%s.%d" % (net, last), "255.255.255.0", net + ".1", net + ".1")

    def config(self, *args, **kwargs):
        st = self._station
        for key, value in kwargs.items():
            if key in ("dhcp_hostname", "hostname"):
                st.hostname = value
            elif key == "reconnects":
                st.reconnects = value
        if not args:
            return None
        key = args[0]
        if key == "mac":
            return bytes([0x24, 0x0A]) + self._board.unique_id()[2:6]
        if key in ("dhcp_hostname", "hostname"):
            return st.hostname
        if key in ("essid", "ssid"):
            return st.request[0] if st.request else ""
        if key == "reconnects":
            return st.reconnects
        if key == "txpower":
            return 20
        raise ValueError("unknown config param")
