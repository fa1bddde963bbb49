"""Tokens typed on the keypad: decode (meter.openpaygo), lock-out (meter.token_lock), then the
app's one credit path, so a token and the cloud's recharge for the same payment credit once.

What is kept here (the lock-out and the last five tokens) goes into the app's state image
under "tokens", in the same write as the credit; the token count window itself lives with the
recharge windows (meter.recharge), since it is what makes a credit exactly-once.
"""
from meter.token_counts import (ADD, COUNTER_SYNC, COUNTER_SYNC_VALUE, DISABLE_PAYG, INVALID,
                                PAYG_DISABLE_VALUE, SET, UNIT_CENTS, USED, TokenError,
                                special_value)
from meter.token_lock import TokenLock

_RECENT = 5
_CODES = {COUNTER_SYNC_VALUE: COUNTER_SYNC, PAYG_DISABLE_VALUE: DISABLE_PAYG}


class KeypadTokens:
    def __init__(self, app, config, state=None):
        self.app = app
        self.decoder = None
        self.problem = ""
        if config["key"]:
            # imported here: a meter without a token key never holds the decoder in RAM
            from meter.openpaygo import Decoder
            try:
                self.decoder = Decoder(config["key"], config["starting_code"] or None)
            except TokenError as exc:
                self.problem = str(exc)
        self.lock = TokenLock()
        self.recent = []  # [count, kind, value], newest last
        self.restore(state)

    @staticmethod
    def check_state(state):
        """ValueError unless `state` is one that state() made (or None)."""
        if state is None:
            return
        if not isinstance(state, dict) or not isinstance(state.get("recent"), list):
            raise ValueError("bad tokens state")
        TokenLock.from_state(state.get("lock"))
        for entry in state["recent"]:
            if (not isinstance(entry, list) or len(entry) != 3
                    or any(type(x) is not int for x in entry)):
                raise ValueError("bad tokens recent entry")

    def state(self):
        """None while there is nothing to keep (no failures, no token yet): the state image
        is written whole on every save, and most meters never see a token."""
        lock = self.lock.state(self.app.uptime_s())
        if lock == [0, 0] and not self.recent:
            return None
        return {"lock": lock, "recent": list(self.recent)}

    def restore(self, state):
        """Back to a state() (the app's undo of a credit that did not reach flash)."""
        if state is None:
            state = {"lock": None, "recent": []}
        self.lock = TokenLock.from_state(state["lock"], self.app.uptime_s())
        self.recent = [list(e) for e in state["recent"]][-_RECENT:]

    def enter(self, digits):
        """A token typed on the keypad; returns (verdict, n): ("ACCEPT", cents credited, or
        the balance a SET token made, or 0), ("USED"|"OLD"|"NO_TOKENS"|"ERROR", 0), or
        ("INVALID"|"LOCKED", whole minutes the keypad is locked for). An accepted token is on
        flash before this returns."""
        app = self.app
        now_s = app.uptime_s()
        if self.decoder is None:
            return "NO_TOKENS", 0
        if self.lock.locked(now_s):
            return "LOCKED", self.lock.minutes_left(now_s)
        counts = app.recharger.tokens
        kind, value, count = self.decoder.decode(digits, counts)
        if kind == INVALID:
            self.lock.fail(now_s)
            try:
                app.persist()  # a reboot must not forgive the wait
            except OSError:
                app.persist_errors += 1
            return "INVALID", self.lock.minutes_left(now_s)
        self.lock.succeed()
        if kind == USED:
            return ("OLD" if counts.below_window(count) else "USED"), 0
        assert value is not None and count is not None  # accepted: the decoder gives both
        special = special_value(value, digits)
        now = app.clock.now()
        status = app.credit(lambda: self._apply(count, value, kind, special, now), now)[0]
        if status == "duplicate":
            return "USED", 0
        if status != "applied":
            return "ERROR", 0
        app.note("token %d: kind %d, value %d" % (count, kind, value))
        if special:
            return "ACCEPT", 0
        if kind == SET:
            return "ACCEPT", app.ledger.balance
        return "ACCEPT", value * UNIT_CENTS if kind == ADD else 0

    def _apply(self, count, value, kind, special, now):
        status, reason = self.app.recharger.apply_token(count, value, kind, special, now)
        if status == "applied":
            # listed by what it did: a 9-digit ADD or SET of 998 or 999 is the standard's code
            shown = _CODES.get(special, kind)
            self.recent = (self.recent + [[count, shown, value]])[-_RECENT:]
        return status, reason
