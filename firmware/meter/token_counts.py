"""The OpenPAYGo token count window, and the standard's constants: what the meter remembers of
the tokens it took, kept with the recharge windows (meter.recharge) in the state image.

Apart from meter.openpaygo (the decoder) so that a meter without a token key, which still
keeps the window (a cloud recharge may carry a token count), does not load the decoder.
"""
from micropython import const

UNIT_CENTS = const(100)  # one token unit is one shilling

ADD = const(1)  # the reference's TokenType values, so verdicts compare directly
SET = const(2)
DISABLE_PAYG = const(3)
COUNTER_SYNC = const(4)
INVALID = const(10)
USED = const(11)

MAX_ACTIVATION_VALUE = const(995)
PAYG_DISABLE_VALUE = const(998)
COUNTER_SYNC_VALUE = const(999)
MAX_TOKEN_JUMP = const(64)
MAX_TOKEN_JUMP_COUNTER_SYNC = const(100)
MAX_UNUSED_OLDER_TOKENS = const(16)
MAX_EXTENDED_VALUE = const(999999)


def special_value(value, digits):
    """The standard's special value that a decoded token of `digits` carries, else 0: only a
    9-digit token carries one, a value above MAX_ACTIVATION_VALUE (PAYG_DISABLE_VALUE,
    COUNTER_SYNC_VALUE; 996 and 997 are undefined), and it credits nothing (the reference
    encoder makes no 9-digit ADD or SET above 995; its device credits none). In an extended
    token, as in a cloud recharge, 998 and 999 are amounts like any other. The reference
    decoder applies the 9-digit rules to extended tokens too, which would let an extended
    KES 999 token be typed again and again and a KES 998 one spend every earlier count: the
    meter does not follow it there (docs/recharge-and-persistence.md)."""
    if value is None or value <= MAX_ACTIVATION_VALUE or len(digits) > 9:
        return 0
    return value


class TokenError(ValueError):
    """A key, starting code or stored count window the decoder cannot use."""


class TokenCounts:
    """The count window: the last count accepted and which recent counts were used.

    `used` is a bitmap under `top`, the highest used count: bit i is count top - i, for i
    in 0..MAX_UNUSED_OLDER_TOKENS, exactly the reference's `used_counts` list. A fresh meter
    starts with its starting count used (the reference would begin with an empty list, which
    its own update turns into None; both accept the same tokens on the first entry)."""

    def __init__(self, count=1, top=None, used=1):
        self.count = count
        self.top = count if top is None else top
        self.used = used

    def state(self):
        return [self.count, self.top, self.used]

    @classmethod
    def from_state(cls, s):
        if (not isinstance(s, list) or len(s) != 3 or any(type(x) is not int or x < 0 for x in s)
                or s[2] >> (MAX_UNUSED_OLDER_TOKENS + 1)):
            raise TokenError("bad token count state")
        return cls(s[0], s[1], s[2])

    def is_used(self, count):
        i = self.top - count
        return 0 <= i <= MAX_UNUSED_OLDER_TOKENS and bool((self.used >> i) & 1)

    def valid(self, count, kind, special=0):
        """The reference's _count_is_valid; `special` is the token's special_value()."""
        if special == COUNTER_SYNC_VALUE:
            return count > self.count - MAX_TOKEN_JUMP
        if count > self.count:
            return True
        return (count > self.count - MAX_UNUSED_OLDER_TOKENS and kind == ADD
                and not self.is_used(count))

    def below_window(self, count):
        """True for a count too old to be told apart from a used one (shown as OLD)."""
        return count <= self.count - MAX_UNUSED_OLDER_TOKENS

    def record(self, count, kind, special=0):
        """Mark a count accepted: the reference's update_used_counts, then the device's count
        rule (a higher count, or any counter sync, becomes the last count)."""
        top = max(self.top, count)
        bits = self.used << (top - self.top) if top - self.top <= 32 else 0
        if kind != ADD or special in (COUNTER_SYNC_VALUE, PAYG_DISABLE_VALUE):
            bits = (1 << (MAX_UNUSED_OLDER_TOKENS + 1)) - 1  # every count up to top is spent
        else:
            bits |= 1 << (top - count)
        self.top = top
        self.used = bits & ((1 << (MAX_UNUSED_OLDER_TOKENS + 1)) - 1)
        if count > self.count or special == COUNTER_SYNC_VALUE:
            self.count = count
