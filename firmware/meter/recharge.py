"""Applies recharge messages to the ledger exactly once, with bounded memory that never forgets.

A recharge is {"id": str, "seq": int, "amount_cents": int, "source": str}. `source` is the
issuer that numbers credits ("cloud" for every M-Pesa/operator recharge, "token" for keypad
tokens); `seq` is that issuer's per-meter counter 1, 2, 3, ... never reused; `id` is the
issuer's reference (M-Pesa receipt, ...) kept only for audit and display. The exactly-once
key is `source:seq`.

Per source the meter keeps `floor` (every seq <= floor has been applied) and a bitmap of the
applied seqs in (floor, floor + window]; floor advances over contiguous applied seqs. So:

  seq <= floor, or its bit set      -> "duplicate", forever: a re-sent credit never applies twice
  seq > floor + window              -> "rejected"/"ahead_of_window", nothing changes; the cloud
                                       re-sends it once the earlier ones are acknowledged
  otherwise                         -> credited to the ledger and marked applied

A rejected message changes nothing, so the issuer must never give a seq to a credit the meter
would reject (zero, negative, too large): the gap would pin the floor. The caller persists
state() together with the ledger in one atomic write before acknowledging anything.

Source "token" is numbered by the OpenPAYGo token count instead (meter.openpaygo): its `seq`
is the count and its memory is the standard's count window (TokenCounts), so a keypad token
and the cloud's recharge for the same payment share one key. A cloud recharge may carry
"token_count", the count of the token made for that payment: whichever arrives first
credits, the other finds the count used and changes nothing but its own seq's mark.
"""
from micropython import const

from meter.token_counts import ADD, SET, TokenCounts, TokenError, UNIT_CENTS
from meter.protocol import RECHARGE_WINDOW

SOURCES = ("cloud", "token")
MAX_ID_LEN = const(64)
_MAX_SEQ = const(0xFFFFFFFF)


class RechargeError(ValueError):
    """A recharge the meter refuses; `reason` is the short code sent back to the issuer."""

    def __init__(self, reason, detail=""):
        super().__init__("%s: %s" % (reason, detail) if detail else reason)
        self.reason = reason


def _is_int(x):
    return type(x) is int


def validate(msg, max_cents, only_source=None):
    """Raise RechargeError unless msg is a well-formed, acceptable recharge (from
    `only_source`, when the channel it came on carries one source only)."""
    if not isinstance(msg, dict):
        raise RechargeError("malformed", "not an object")
    for key in ("id", "seq", "amount_cents", "source"):
        if key not in msg:
            raise RechargeError("malformed", "missing " + key)
    ref = msg["id"]
    source = msg["source"]
    seq = msg["seq"]
    amount = msg["amount_cents"]
    if not isinstance(source, str) or not isinstance(ref, str):
        raise RechargeError("malformed", "id and source must be strings")
    if source not in SOURCES or (only_source is not None and source != only_source):
        raise RechargeError("bad_source", source[:16])
    if not ref or len(ref) > MAX_ID_LEN:
        raise RechargeError("bad_id", "empty or longer than %d" % MAX_ID_LEN)
    if not _is_int(seq):
        raise RechargeError("malformed", "seq must be an int")
    if seq < 1 or seq > _MAX_SEQ:
        raise RechargeError("bad_seq", str(seq))
    if not _is_int(amount):
        raise RechargeError("bad_amount", "amount_cents must be an int")
    if amount == 0:
        raise RechargeError("zero")
    if amount < 0:
        raise RechargeError("negative")
    if amount > max_cents:
        raise RechargeError("too_large", "over %d" % max_cents)
    count = msg.get("token_count")
    if count is not None and (source != "cloud" or not _is_int(count) or count < 1
                              or count > _MAX_SEQ):
        raise RechargeError("bad_token_count", str(count)[:16])


class Recharger:
    def __init__(self, ledger, max_cents=25000000, window=RECHARGE_WINDOW, state=None):
        if not _is_int(max_cents) or max_cents < 1:
            raise ValueError("max_cents must be a positive int")
        if not _is_int(window) or window < 1:
            raise ValueError("window must be a positive int")
        self.ledger = ledger
        self.max_cents = max_cents
        self.window = window
        # source -> [floor, bits]; bit i set means seq floor + 1 + i has been applied
        self._seen = {"cloud": [0, 0]}
        self.tokens = TokenCounts()  # the "token" source's memory
        if state is not None:
            self._restore(state)
        self.applied_count = 0
        self.duplicate_count = 0
        self.rejected_count = 0

    def _restore(self, state):
        if not isinstance(state, dict):
            raise RechargeError("bad_state", "not a dict")
        for source in state:
            entry = state[source]
            if source not in SOURCES:
                raise RechargeError("bad_state", "unknown source")
            if source == "token":
                self._restore_tokens(entry)
                continue
            if (not isinstance(entry, list) or len(entry) != 2 or not _is_int(entry[0])
                    or not _is_int(entry[1]) or entry[0] < 0 or entry[1] < 0):
                raise RechargeError("bad_state", source)
            self._seen[source] = [entry[0], 0]
            self._mark_bits(self._seen[source], entry[1])

    def _restore_tokens(self, entry):
        if entry == [0, 0]:
            return  # a state from before tokens: no token was ever numbered
        try:
            self.tokens = TokenCounts.from_state(entry)
        except TokenError:
            raise RechargeError("bad_state", "token")

    def state(self):
        """A JSON-ready copy, to be saved in the same write as the ledger."""
        floor, bits = self._seen["cloud"]
        return {"cloud": [floor, bits], "token": self.tokens.state()}

    def floor(self, source):
        if source == "token":
            return self.tokens.count
        return self._seen[source][0]

    def advance_floor(self, source, floor):
        """Raise a source's floor to `floor` (never lower it); True if it moved.

        For resync after the state was lost ("corrupt" boot): the issuer tells the meter its
        last acknowledged seq, else the windows restart at 0 and every newer seq is ahead of
        the window forever. Raising a floor only turns more seqs into duplicates, so it can
        never let a credit apply twice."""
        if source not in self._seen:
            # a token count is resynced by the standard's own counter sync token
            raise RechargeError("bad_source")
        if not _is_int(floor) or floor < 0 or floor > _MAX_SEQ:
            raise RechargeError("bad_seq", str(floor))
        entry = self._seen[source]
        if floor <= entry[0]:
            return False
        bits = entry[1] >> (floor - entry[0])
        entry[0] = floor
        entry[1] = 0
        self._mark_bits(entry, bits)
        return True

    def seen(self, source, seq):
        """True if (source, seq) has been applied; pure query, for the app and tests. A token
        count below the window counts as seen: it can no longer be told apart from a used one."""
        if source == "token":
            return not self.tokens.valid(seq, ADD)
        floor, bits = self._seen[source]
        return seq <= floor or bool((bits >> (seq - floor - 1)) & 1)

    def apply(self, msg, t, only_source=None):
        """Return (status, reason): ("applied", "ok"), ("duplicate", "already_applied") or
        ("rejected", <code>). Only "applied" changes the ledger and the windows. The one
        place a recharge is validated (see validate)."""
        try:
            validate(msg, self.max_cents, only_source)
        except RechargeError as exc:
            self.rejected_count += 1
            return "rejected", exc.reason
        source = msg["source"]
        seq = msg["seq"]
        if source == "token":
            if not self.tokens.valid(seq, ADD):
                self.duplicate_count += 1
                return "duplicate", "already_applied"
            self.ledger.credit(msg["amount_cents"], msg["id"], t)
            self.tokens.record(seq, ADD)
            self.applied_count += 1
            return "applied", "ok"
        if self.seen(source, seq):
            self.duplicate_count += 1
            return "duplicate", "already_applied"
        entry = self._seen[source]
        if seq > entry[0] + self.window:
            self.rejected_count += 1
            return "rejected", "ahead_of_window"
        count = msg.get("token_count")
        # an amount is never one of the standard's special values: a payment of KES 998 or 999
        # has an extended token (token_counts.special_value)
        if count is not None and not self.tokens.valid(count, ADD):
            # the customer typed this payment's token first: the seq is spent, the money
            # was credited then
            self._mark(entry, seq)
            self.duplicate_count += 1
            return "duplicate", "token_used"
        self.ledger.credit(msg["amount_cents"], msg["id"], t)
        self._mark(entry, seq)
        if count is not None:
            self.tokens.record(count, ADD)
        self.applied_count += 1
        return "applied", "ok"

    def apply_token(self, count, value, kind, special, t):
        """A token decoded from the keypad (meter.openpaygo), `special` its special_value():
        an ADD credit goes through apply() as source "token"; SET makes the balance `value`
        shillings; an ADD of 0, DISABLE_PAYG, COUNTER_SYNC and any token with a special value
        only spend their count. Returns like apply()."""
        if not self.tokens.valid(count, kind, special):
            self.duplicate_count += 1
            return "duplicate", "already_applied"
        if kind == ADD and value and not special:
            return self.apply({"id": "T%d" % count, "seq": count, "source": "token",
                               "amount_cents": value * UNIT_CENTS}, t)
        if kind == SET and not special:
            self.ledger.set_balance(value * UNIT_CENTS, "T%d" % count, t)
        self.tokens.record(count, kind, special)
        self.applied_count += 1
        return "applied", "ok"

    def _mark(self, entry, seq):
        self._mark_bits(entry, 1 << (seq - entry[0] - 1))

    def _mark_bits(self, entry, new_bits):
        floor = entry[0]
        bits = entry[1] | new_bits
        # bit 0 is floor + 1: slide the floor over every contiguous applied seq
        while bits & 1:
            bits >>= 1
            floor += 1
        entry[0] = floor
        entry[1] = bits
