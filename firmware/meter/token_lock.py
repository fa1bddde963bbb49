"""Lock-out after repeated invalid token entries: growing waits that survive a reboot.

Guessing a 9-digit token is what the wait is for: after FREE_TRIES invalid entries in a row
(typing mistakes happen), each further invalid entry locks the keypad for twice as long as the
last, from one minute up to a day. A valid token (accepted, used or old) ends the run.

The wait counts down on the meter's uptime, never the wall clock: the RTC restarts at 2000
after a power cut and NTP may be out of reach for days. The state holds the wait left at the
last save, so cutting the power never shortens a wait (it only pauses it while the meter is
off) and it is saved in the same state image as the credit.
"""
from micropython import const

FREE_TRIES = const(3)
FIRST_WAIT_S = const(60)
MAX_WAIT_S = const(86400)


class TokenLock:
    def __init__(self, failures=0, left_s=0, now_s=0):
        self.failures = failures
        self._left_s = left_s
        self._since_s = now_s  # the uptime at which _left_s was true

    @classmethod
    def from_state(cls, state, now_s=0):
        """Rebuild from state(); ValueError for anything else, None for no lock at all."""
        if state is None:
            return cls(now_s=now_s)
        if (not isinstance(state, list) or len(state) != 2
                or any(type(x) is not int or x < 0 for x in state)):
            raise ValueError("bad token lock state")
        return cls(state[0], min(state[1], MAX_WAIT_S), now_s)

    def state(self, now_s):
        return [self.failures, self.left_s(now_s)]

    def left_s(self, now_s):
        return max(0, self._left_s - max(0, now_s - self._since_s))

    def minutes_left(self, now_s):
        """For the LCD: whole minutes, rounded up, so a locked keypad never shows 0."""
        return (self.left_s(now_s) + 59) // 60

    def locked(self, now_s):
        return self.left_s(now_s) > 0

    def fail(self, now_s):
        """An invalid entry; returns the wait it starts, in seconds (0 while tries are free)."""
        self.failures += 1
        over = self.failures - FREE_TRIES
        wait = 0
        if over > 0:
            # the exponent is capped before shifting: a count of thousands must stay a small int
            wait = min(FIRST_WAIT_S << min(over - 1, 11), MAX_WAIT_S)
        self._left_s = wait
        self._since_s = now_s
        return wait

    def succeed(self):
        self.failures = 0
