# The load relay or contactor: a plain relay held by a pin level, or a latching (bistable) one
# switched by a pulse on its set or reset coil.


class RelayError(Exception):
    """The relay was configured in a way that cannot switch it."""


class Relay:
    def __init__(self, pin, active_low=False, latching=False, reset_pin=None, pulse_ms=50,
                 sleep_ms=None, sense_pin=None, sense_active_low=False, closed=None):
        """pin drives the relay (the set coil of a latching relay).

        A plain relay's pin must already be at the level for the state wanted at boot (see
        level_for): this never writes it on construction, so a reboot cannot flicker the load.
        A latching relay keeps its contacts unpowered and has no level to read back: closed
        passes in the persisted state (None = unknown, the first set() then always pulses).
        sense_pin, if wired, is a feedback contact read by is_closed().
        """
        if latching and reset_pin is None:
            raise RelayError("a latching relay needs a reset_pin")
        if type(pulse_ms) is not int or pulse_ms <= 0:
            raise RelayError("pulse_ms must be a positive int")
        if sleep_ms is None and latching:
            import time
            sleep_ms = time.sleep_ms
        self._pin = pin
        self._reset_pin = reset_pin
        self.active_low = active_low
        self.latching = latching
        self.pulse_ms = pulse_ms
        self._sleep_ms = sleep_ms
        self._sense_pin = sense_pin
        self._sense_active_low = sense_active_low
        self._latched = None if closed is None else bool(closed)
        self.switch_count = 0

    @staticmethod
    def level_for(closed, active_low):
        """The pin level that means `closed` (load connected) for this polarity: 0 or 1."""
        return 0 if bool(closed) == bool(active_low) else 1

    def close(self):
        """Connect the load."""
        self.set(True)

    def open(self):
        """Cut the load."""
        self.set(False)

    def set(self, closed):
        closed = bool(closed)
        if self.latching:
            if self._latched is not closed:
                self._pulse(self._pin if closed else self._reset_pin, self._reset_pin if closed
                            else self._pin)
                self._latched = closed
                self.switch_count += 1
            return
        if self._commanded() is not closed:
            self._pin.value(self.level_for(closed, self.active_low))
            self.switch_count += 1

    def is_closed(self):
        """What the contacts are believed to be: the feedback contact when wired."""
        if self._sense_pin is not None:
            return self._sense_pin.value() == self.level_for(True, self._sense_active_low)
        return self._commanded()

    def commanded(self):
        """What the driver last asked for (None: a latching relay of unknown state)."""
        if self.latching:
            return self._latched
        return self._commanded()

    def mismatch(self):
        """True when a feedback contact disagrees with the command: welded or dead relay."""
        if self._sense_pin is None:
            return False
        want = self.commanded()
        return want is not None and want != self.is_closed()

    def _commanded(self):
        if self.latching:
            return bool(self._latched)
        return self._pin.value() == self.level_for(True, self.active_low)

    def _pulse(self, coil, other):
        on = self.level_for(True, self.active_low)
        off = 1 - on
        # Never energise both coils; and whatever happens during the wait, the coil is
        # released, since a coil left powered overheats.
        other.value(off)
        coil.value(on)
        try:
            self._sleep_ms(self.pulse_ms)  # type: ignore  # set in __init__ for latching
        finally:
            coil.value(off)
