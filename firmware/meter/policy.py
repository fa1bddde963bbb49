# Relay policy: decides once a second whether the load relay should be closed, from credit,
# friendly hours, overload, the cover and bypass tamper. Pure logic: no hardware, no clock reads.
#
# Time. The policy keeps its own seconds count, advanced by the growth of `now_s` between
# calls (a repeated or backward now_s adds nothing) and starting at 0 when it is built. Its
# persisted state holds times relative to that count (trip ages, seconds still to wait), so
# after a reboot, where uptime restarts at 0, they carry on where they were. Time spent powered
# off is not counted: a trip stays in the window longer across a power cut, which errs towards
# lockout rather than towards reconnecting a faulty installation.
#
# Readings. Each update() stands for the second ending at `now_s`: "more than N seconds over"
# means more than N consecutive seconds with a reading over. A missing reading (None: sensor
# fault or no mains) breaks a run, so it never trips and never raises tamper.
#
# Kept lean on purpose: the firmware tests compile this file from source in a 64 KB heap.
from micropython import const

_STATE_VERSION = const(1)
_DAY_MIN = const(1440)

_KEYS = ("floor_cents", "max_power_w", "overload_grace_s", "reconnect_delay_s", "max_trips",
         "trip_window_s", "min_switch_s", "friendly", "friendly_max_debt_cents",
         "tamper_power_w", "tamper_grace_s", "cover_disconnect")


class PolicyError(ValueError):
    pass


def _int(name, value, low=None):
    # bool is an int subclass; True must never pass as an amount or a time.
    if type(value) is not int or (low is not None and value < low):
        raise PolicyError("%s: bad value %r" % (name, value))
    return value


def parse_window(window):
    # (start, end) minutes of the local day, end excluded; start > end wraps midnight.
    # start == end could mean "never" or "always": refused rather than guessed.
    if window is None:
        return None
    if (not isinstance(window, (tuple, list)) or len(window) != 2 or window[0] == window[1]
            or not all(type(m) is int and 0 <= m < _DAY_MIN for m in window)):
        raise PolicyError("friendly: bad window %r" % (window,))
    return (window[0], window[1])


class RelayPolicy:
    def __init__(self, floor_cents=0, max_power_w=0, overload_grace_s=2, reconnect_delay_s=60,
                 max_trips=3, trip_window_s=3600, min_switch_s=10, friendly=None,
                 friendly_max_debt_cents=0, tamper_power_w=5, tamper_grace_s=5,
                 cover_disconnect=False, log=None, state=None):
        self.floor_cents = _int("floor_cents", floor_cents)
        # 0 disables overload protection; tamper_power_w = 0 likewise disables bypass alerts.
        self.max_power_w = _int("max_power_w", max_power_w, 0)
        self.overload_grace_s = _int("overload_grace_s", overload_grace_s, 0)
        self.reconnect_delay_s = _int("reconnect_delay_s", reconnect_delay_s, 0)
        # The trip that makes max_trips inside the window locks out: 1 = lock out at once.
        self.max_trips = _int("max_trips", max_trips, 1)
        self.trip_window_s = _int("trip_window_s", trip_window_s, 0)
        self.min_switch_s = _int("min_switch_s", min_switch_s, 0)
        self.friendly = parse_window(friendly)
        self.friendly_max_debt_cents = _int("friendly_max_debt_cents",
                                            friendly_max_debt_cents, 0)
        self.tamper_power_w = _int("tamper_power_w", tamper_power_w, 0)
        self.tamper_grace_s = _int("tamper_grace_s", tamper_grace_s, 0)
        self.cover_disconnect = bool(cover_disconnect)
        self._log = log
        self._t = 0               # the policy's own seconds (see the top of the file)
        self._last_now = -1
        self._trips = []          # own time of each trip still inside the window
        self._locked = False
        self._hold_until = 0      # after a trip: no reconnect before this (0 = no hold)
        self._switch_ready = 0    # no credit-driven switching before this
        self._before = (0, False)  # (switch_ready, want) before the last update
        self._over_since = -1     # start of the current run over max_power_w (-1 = none)
        self._bypass_since = -1   # start of the current run of power with the relay open
        self._bypass = False
        self._cover_open = False
        self._want = False        # the credit-driven wish at the last update, forced opens aside
        self.reason = "no_credit"
        if state is not None:
            self._restore(state)

    @classmethod
    def from_config(cls, config, state=None, log=None):
        # Keys named as the constructor's arguments; missing ones take its defaults, other
        # keys are ignored. A bad value must not stop the meter from booting: it is logged
        # and replaced by the default (the constructor itself raises PolicyError).
        kwargs = {}
        for name in _KEYS:
            if name in config:
                try:
                    cls(**{name: config[name]})
                    kwargs[name] = config[name]
                except PolicyError as exc:
                    if log:
                        log.error("policy config ignored: %s", exc)
        return cls(log=log, state=state, **kwargs)

    def update(self, now_s, minute_of_day, balance_cents, power_w, cover_open, relay_closed):
        # True if the relay should be closed now; relay_closed is how it is now.
        _int("now_s", now_s, 0)
        _int("balance_cents", balance_cents)
        if power_w is not None:
            _int("power_w", power_w)
        if minute_of_day is not None:
            _int("minute_of_day", minute_of_day, 0)
        if now_s > self._last_now:
            if self._last_now >= 0:
                self._t += now_s - self._last_now
            self._last_now = now_s
        t = self._t
        relay_closed = bool(relay_closed)
        self._before = (self._switch_ready, self._want)  # for cancel_switch
        self._cover_open = bool(cover_open)
        self._trips = [x for x in self._trips if t - x < self.trip_window_s]
        if self._hold_until and t >= self._hold_until:
            self._hold_until = 0
        self._watch_overload(t, power_w, relay_closed)
        self._watch_bypass(t, power_w, relay_closed)

        reason = "no_credit"
        if balance_cents > self.floor_cents:
            reason = "credit"
        elif (relay_closed or self._want) and self._friendly_ok(minute_of_day, balance_cents):
            # Friendly hours keep on a supply that was on (or only cut by a trip or the
            # cover), but give no new credit to a meter already off for lack of it.
            reason = "friendly_hours"
        want = self._want = reason != "no_credit"
        forced = self._forced_open()
        if forced:
            # Safety and tamper win over contact wear: open at once, whatever the interval.
            if relay_closed:
                self._switch_ready = t + self.min_switch_s
            self.reason = forced
            return False
        if want != relay_closed:
            if t < self._switch_ready:
                reason = "min_interval"
                want = relay_closed
            else:
                self._switch_ready = t + self.min_switch_s
        self.reason = reason
        return want

    def cancel_switch(self):
        """The switch the last update asked for was not made (the state it goes with could
        not be saved): the minimum interval and the remembered wish are as before it."""
        self._switch_ready, self._want = self._before

    def _forced_open(self):
        if self._locked:
            return "lockout"
        if self._hold_until:
            return "overload"
        if self.cover_disconnect and self._cover_open:
            return "cover"
        return None

    def _friendly_ok(self, minute_of_day, balance):
        # An unknown local time (None: clock not set yet) counts as outside the window.
        limit = self.friendly_max_debt_cents
        if self.friendly is None or minute_of_day is None or (limit and balance <= -limit):
            return False
        start, end = self.friendly
        minute = minute_of_day % _DAY_MIN
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end

    def _watch_overload(self, t, power_w, relay_closed):
        # With the relay open, power is a bypass, not an overload this relay could cut.
        if (not self.max_power_w or power_w is None or not relay_closed
                or power_w <= self.max_power_w or self._locked or self._hold_until):
            self._over_since = -1
            return
        if self._over_since < 0:
            self._over_since = t
        if t - self._over_since + 1 <= self.overload_grace_s:
            return
        self._over_since = -1
        self._trips.append(t)
        if len(self._trips) >= self.max_trips:
            self._locked = True
            self._say("error", "overload %d W: trip %d in %d s, locked out",
                      power_w, len(self._trips), self.trip_window_s)
        else:
            # At least one second, so a zero delay still shows up as a trip.
            self._hold_until = t + max(1, self.reconnect_delay_s)
            self._say("warn", "overload %d W: tripped, reconnect in %d s",
                      power_w, self.reconnect_delay_s)

    def _watch_bypass(self, t, power_w, relay_closed):
        if power_w is None:
            # No reading says nothing either way: keep a raised alert, restart the count.
            self._bypass_since = -1
        elif relay_closed or not self.tamper_power_w or power_w < self.tamper_power_w:
            self._bypass_since = -1
            self._bypass = False
        elif self._bypass_since < 0:
            self._bypass_since = t
        if (not self._bypass and self._bypass_since >= 0
                and t - self._bypass_since + 1 > self.tamper_grace_s):
            self._bypass = True
            self._say("warn", "tamper: %d W with the relay open", power_w)

    def _say(self, level, msg, *args):
        if self._log:
            getattr(self._log, level)(msg, *args)

    def reset_lockout(self):
        # Operator command: forget the lockout and the trip history (a reboot does not).
        if self._locked:
            self._say("info", "overload lockout reset by operator")
        self._locked = False
        self._trips = []
        self._hold_until = 0

    def boot_state(self, persisted_closed, balance_cents, minute_of_day=None):
        # The relay state at boot, before the first reading: the persisted one (no flicker),
        # but never closed when locked out or held after a trip, nor without credit; friendly
        # hours count only when the local time is already known.
        _int("balance_cents", balance_cents)
        forced = self._forced_open()
        reason = "no_credit"
        if balance_cents > self.floor_cents:
            reason = "credit"
        elif persisted_closed and self._friendly_ok(minute_of_day, balance_cents):
            reason = "friendly_hours"
        self.reason = forced or reason
        return bool(persisted_closed) and not forced and reason != "no_credit"

    @property
    def trips(self):
        # Trips inside the trip window: the ones that count towards lockout.
        return len(self._trips)

    def alerts(self):
        return {"overload": self._hold_until > 0, "lockout": self._locked,
                "tamper_bypass": self._bypass, "tamper_cover": self._cover_open}

    def state(self):
        # JSON-able; what must survive a power cut, in seconds relative to now.
        t = self._t
        return {"v": _STATE_VERSION, "lockout": self._locked,
                "trip_ages_s": [t - x for x in self._trips],
                "hold_s": max(0, self._hold_until - t) if self._hold_until else 0,
                "switch_wait_s": max(0, self._switch_ready - t)}

    def _restore(self, state):
        # A state this firmware cannot read (another version, damage) must not stop the
        # meter from booting: it starts without history and logs why.
        try:
            locked = state.get("lockout", False)
            if state.get("v") != _STATE_VERSION or type(locked) is not bool:
                raise PolicyError("version or lockout")
            trips = [-_int("trip age", a, 0) for a in state.get("trip_ages_s", [])]
            self._hold_until = _int("hold_s", state.get("hold_s", 0), 0)
            self._switch_ready = _int("switch_wait_s", state.get("switch_wait_s", 0), 0)
        except (PolicyError, AttributeError, TypeError) as exc:
            self._hold_until = self._switch_ready = 0
            self._say("error", "relay policy state ignored: %s", exc)
            return
        self._locked = locked
        self._trips = trips
        if locked:
            self.reason = "lockout"
