# What the 16x2 LCD shows: pure formatting of the app's snapshot, plus the Display that writes
# it to the LCD and beeps when the balance runs low.
from micropython import const

WIDTH = const(16)
PAGES = const(4)  # 0 overview, 1 balance, 2 energy, 3 alerts and links
_LEVEL_OK = const(0)
_LEVEL_LOW = const(1)
_LEVEL_CRITICAL = const(2)

# Status flags by priority: the first that applies is shown on the overview. Alert names are
# the ones the ledger, the relay policy and the app raise.
_ALERT_FLAGS = (
    ("tamper", "TAMPER"),
    ("tamper_cover", "TAMPER"),
    ("tamper_bypass", "TAMPER"),
    ("lockout", "LOCK"),
    ("overload", "OVLD"),
)
_LATE_FLAGS = (
    ("sensor_fault", "SENSOR"),
    ("critical_balance", "LOW"),
    ("low_balance", "LOW"),
    ("state_corrupt", "ERR"),
    ("state_fallback", "ERR"),
    ("connection_lost", "NO NET"),
)
_ALL_FLAGS = _ALERT_FLAGS + _LATE_FLAGS
# The snapshot fields render() reads, besides the alerts.
_SHOWN_KEYS = ("balance_cents", "power_w", "energy_wh", "relay_closed", "online")
_ABSENT = object()  # a missing field renders differently from a None one (relay_closed)


def money(cents, with_cents=True):
    """'1234.50', '-0.05'; whole shillings (cut towards zero) when with_cents is False."""
    if type(cents) is not int:
        return "--"
    sign = "-" if cents < 0 else ""
    cents = -cents if cents < 0 else cents
    if with_cents:
        return "%s%d.%02d" % (sign, cents // 100, cents % 100)
    return "%s%d" % (sign if cents >= 100 else "", cents // 100)


def power(watts):
    """'0.85kW', '12.3kW', '123kW' (rounded); '--kW' with no reading."""
    if type(watts) is not int:
        return "--kW"
    sign = "-" if watts < 0 else ""
    w = -watts if watts < 0 else watts
    hundredths = (w + 5) // 10
    if hundredths < 1000:
        return "%s%d.%02dkW" % (sign, hundredths // 100, hundredths % 100)
    tenths = (w + 50) // 100
    if tenths < 1000:
        return "%s%d.%dkW" % (sign, tenths // 10, tenths % 10)
    return "%s%dkW" % (sign, (w + 500) // 1000)


def energy(wh):
    """'123.4kWh' (cut, as a register reads), whole kWh from 10000 kWh, MWh past 999999."""
    if type(wh) is not int:
        return "--kWh"
    if wh < 0:
        return "-" + energy(-wh)
    tenths = wh // 100
    if tenths < 100000:
        return "%d.%dkWh" % (tenths // 10, tenths % 10)
    if wh < 1000000000:
        return "%dkWh" % (wh // 1000)
    return "%dMWh" % (wh // 1000000)


def status(snapshot):
    """The one flag the overview shows, most urgent first; '' when all is well."""
    alerts = snapshot.get("alerts") or {}
    for name, flag in _ALERT_FLAGS:
        if alerts.get(name):
            return flag
    balance = snapshot.get("balance_cents")
    if not snapshot.get("relay_closed", True):
        return "CUT" if type(balance) is int and balance <= 0 else "OFF"
    for name, flag in _LATE_FLAGS:
        if alerts.get(name):
            return flag
    if type(balance) is int and balance <= 0:
        return "LOW"  # e.g. running into debt through friendly hours
    for name in alerts:
        if alerts[name] and not _known(name):
            return "ALERT"
    if snapshot.get("online") is False:
        return "NO NET"
    return ""


def low_level(snapshot):
    """0 fine, 1 low, 2 critical (or nothing left): what the beeper reacts to."""
    alerts = snapshot.get("alerts") or {}
    balance = snapshot.get("balance_cents")
    if alerts.get("critical_balance") or (type(balance) is int and balance <= 0):
        return _LEVEL_CRITICAL
    if alerts.get("low_balance"):
        return _LEVEL_LOW
    return _LEVEL_OK


def render(snapshot, page=0):
    """(line1, line2) for the LCD, each exactly WIDTH characters."""
    page = page % PAGES
    flag = status(snapshot)
    balance = snapshot.get("balance_cents")
    if page == 0:
        return (_balance_line(balance, flag),
                _spread(power(snapshot.get("power_w")), energy(snapshot.get("energy_wh"))))
    if page == 1:
        return _spread("Balance", flag), _balance_line(balance, "")
    if page == 2:
        return (_spread("Power", power(snapshot.get("power_w"))),
                _spread("Total", energy(snapshot.get("energy_wh"))))
    return _alerts_line(snapshot), _links_line(snapshot)


def _balance_line(cents, flag):
    room = WIDTH - (len(flag) + 1 if flag else 0)
    for text in ("KES " + money(cents), money(cents), "KES " + money(cents, False),
                 money(cents, False)):
        if len(text) <= room:
            return _spread(text, flag)
    # Beyond any real balance: say so rather than show wrong digits.
    sign = "-" if cents < 0 else ""
    return _spread(sign + ">" + "9" * (room - 1 - len(sign)), flag)


def _alerts_line(snapshot):
    alerts = snapshot.get("alerts") or {}
    flags = []
    for name, flag in _ALL_FLAGS:
        if alerts.get(name) and flag not in flags:
            flags.append(flag)
    for name in alerts:
        if alerts[name] and not _known(name) and "ALERT" not in flags:
            flags.append("ALERT")
    if not flags:
        return _fit("No alerts")
    return _fit(" ".join(flags))


def _links_line(snapshot):
    load = "Load ON" if snapshot.get("relay_closed") else "Load OFF"
    net = "Net OK" if snapshot.get("online") else "Net --"
    return _spread(load, net)


def _known(name):
    for known, _ in _ALL_FLAGS:
        if known == name:
            return True
    return False


def _spread(left, right):
    gap = WIDTH - len(left) - len(right)
    if gap < 1:
        return _fit(left + " " + right if right else left)
    return left + " " * gap + right


def _fit(text):
    return (text + " " * WIDTH)[:WIDTH]


class Display:
    """Writes the current page to the LCD and beeps when the balance turns low or critical."""

    def __init__(self, lcd, buzzer=None, low_beep_ms=(200, 100, 200),
                 critical_beep_ms=(400, 150, 400, 150, 400), log=None):
        self._lcd = lcd
        self._buzzer = buzzer
        self._patterns = (None, _pattern(low_beep_ms), _pattern(critical_beep_ms))
        self._log = log
        self.page = 0
        # Starting at "fine" makes a meter that boots already low beep once, which is what a
        # customer flipping the breaker back on should hear.
        self._level = _LEVEL_OK
        self.lcd_errors = 0
        self._lcd_failed = False
        # What the last render() was made from, and its lines: rendering allocates a few
        # strings per line, so a tick that changes nothing shown reuses them.
        self._lines = None
        self._shown_page = 0
        self._shown = {}
        self._shown_alerts = {}

    def next_page(self):
        self.page = (self.page + 1) % PAGES
        return self.page

    def show(self, snapshot, now_ms):
        level = low_level(snapshot)
        buzzer = self._buzzer
        if buzzer is not None:
            # The buzzer has no timer of its own: without this a beep never ends.
            buzzer.update(now_ms)
            if level > self._level:
                buzzer.beep(now_ms, self._patterns[level])
        self._level = level
        if self._lcd is None:
            return
        if not self._unchanged(snapshot):
            self._lines = render(snapshot, self.page)
            self._remember(snapshot)
        line1, line2 = self._lines  # type: ignore
        try:
            if self._lcd_failed:
                # An LCD that lost power or was replugged wakes up in 8-bit mode, blank: it
                # has to be initialised again before the lines mean anything to it.
                self._lcd.init()
                self._lcd_failed = False
            self._lcd.write_line(0, line1)
            self._lcd.write_line(1, line2)
        except OSError as exc:
            # A loose LCD must not stop the meter.
            self._lcd_failed = True
            self.lcd_errors += 1
            if self._log is not None and self.lcd_errors == 1:
                self._log.warn("LCD write failed: %s", exc)

    def _unchanged(self, snapshot):
        """True if render() would give the lines it gave last time."""
        if self._lines is None or self._shown_page != self.page:
            return False
        shown = self._shown
        for key in _SHOWN_KEYS:
            now = snapshot.get(key, _ABSENT)
            before = shown.get(key, _ABSENT)
            # 0 == False and 1 == True, yet money() and power() tell an int from a bool.
            if now != before or type(now) is not type(before):
                return False
        # Alerts are only read for their truth, on which equal values (1, True) agree.
        return (snapshot.get("alerts") or {}) == self._shown_alerts

    def _remember(self, snapshot):
        self._shown_page = self.page
        for key in _SHOWN_KEYS:
            self._shown[key] = snapshot.get(key, _ABSENT)
        # A copy: the app updates its alerts dict in place.
        self._shown_alerts = dict(snapshot.get("alerts") or {})


def _pattern(ms):
    if type(ms) is int:
        return (ms,)
    return tuple(ms)
