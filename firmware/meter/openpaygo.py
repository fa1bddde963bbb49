"""OpenPAYGo Token decoding on the meter: 9-digit standard and 12-digit extended tokens.

Follows the reference implementation (EnAccess's PyPI `openpaygo` 0.6.3) rule for rule, and
tests/firmware/test_openpaygo.py checks every verdict against it. A token is the starting
code's chain of SipHash-2-4 steps run `count` times, with the value (obscured by the starting
code's last three, or six, digits) written into its last digits. Decoding tries every count
from 0 to last_count + MAX_TOKEN_JUMP (+ the larger jump for counter sync); the first valid
match wins, and a match that is not valid (a used or too old count) makes the token USED.

Value unit on a mita meter: 1 token unit = KES 1 = 100 cents (see UNIT_CENTS).
Pure logic: no hardware, no clock. The count window (TokenCounts) is part of the meter's
power-safe state image, saved with the credit it guards (meter.recharge).
"""
from micropython import const

from meter.siphash import hash_words, key_state, siphash24

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

_M = const(0xFFFFFFFF)


class TokenError(ValueError):
    """A key, starting code or stored count window the decoder cannot use."""


def _bswap32(x):
    return ((x & 0xFF) << 24) | ((x & 0xFF00) << 8) | ((x >> 8) & 0xFF00) | (x >> 24)


def _key_bytes(key):
    if isinstance(key, str):
        if len(key) != 32:
            raise TokenError("a token key is 32 hex digits")
        try:
            return bytes(int(key[i:i + 2], 16) for i in range(0, 32, 2))
        except ValueError:
            raise TokenError("a token key is 32 hex digits")
    if len(key) != 16:
        raise TokenError("a token key is 16 bytes")
    return bytes(key)


def _to_token(hi, lo):
    # the reference's _convert_to_29_5_bits: the hash folded to 32 bits, its top 30 bits,
    # brought under a billion
    t = ((hi ^ lo) & _M) >> 2
    return t - 73741825 if t > 999999999 else t


def _to_extended(hi, lo):
    # the reference's _convert_to_40_bits: bits 24..63 of the hash, brought under 10**12
    t = (hi << 8) | (lo >> 24)
    return t - 99511627777 if t > 999999999999 else t


def starting_code(key):
    """The starting code the reference derives from the key when none is provisioned."""
    key = _key_bytes(key)
    h = siphash24(key, key)
    return _to_token(h >> 32, h & _M)


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

    def valid(self, count, value, kind):
        """The reference's _count_is_valid."""
        if value == COUNTER_SYNC_VALUE:
            return count > self.count - MAX_TOKEN_JUMP
        if count > self.count:
            return True
        return (count > self.count - MAX_UNUSED_OLDER_TOKENS and kind == ADD
                and not self.is_used(count))

    def below_window(self, count):
        """True for a count too old to be told apart from a used one (shown as OLD)."""
        return count <= self.count - MAX_UNUSED_OLDER_TOKENS

    def record(self, count, value, kind):
        """Mark a count accepted: the reference's update_used_counts, then the device's count
        rule (a higher count, or any counter sync, becomes the last count)."""
        top = max(self.top, count)
        bits = self.used << (top - self.top) if top - self.top <= 32 else 0
        if kind != ADD or value in (COUNTER_SYNC_VALUE, PAYG_DISABLE_VALUE):
            bits = (1 << (MAX_UNUSED_OLDER_TOKENS + 1)) - 1  # every count up to top is spent
        else:
            bits |= 1 << (top - count)
        self.top = top
        self.used = bits & ((1 << (MAX_UNUSED_OLDER_TOKENS + 1)) - 1)
        if count > self.count or value == COUNTER_SYNC_VALUE:
            self.count = count


class Decoder:
    """Decodes tokens for one key and starting code; holds no count state (TokenCounts)."""

    def __init__(self, key, code=None):
        self._state = key_state(_key_bytes(key))
        if code is None:
            code = starting_code(key)
        if type(code) is not int or not 0 <= code <= 999999999:
            raise TokenError("a starting code is a 9-digit int")
        self.code = code

    def _next(self, code):
        # the reference hashes the code's 4 big-endian bytes twice over: one 8-byte word
        w = _bswap32(code)
        return _to_token(*hash_words(self._state, ((w, w),), 8))

    def _next_extended(self, code):
        hi = _bswap32(code & _M)
        lo = _bswap32(code >> 32)  # the 8 big-endian bytes of a 40-bit code, read LE
        return _to_extended(*hash_words(self._state, ((hi, lo),), 8))

    def decode(self, token, counts):
        """(verdict, value, count) for the digits `token` (a str) against `counts`, which is
        not changed: verdict ADD, SET, DISABLE_PAYG, COUNTER_SYNC, USED or INVALID; value
        and count are None unless accepted. Apply an accepted token with counts.record()."""
        if not isinstance(token, str) or not token or not token.isdigit():
            return INVALID, None, None
        if len(token) <= 9:
            return self._search(int(token), counts, 1000, self._next, False)
        if len(token) <= 12:
            return self._search(int(token), counts, 1000000, self._next_extended, True)
        return INVALID, None, None

    def _search(self, token, counts, offset, step, extended):
        base = token % offset
        value = (base - self.code % offset) % offset
        current = self.code - self.code % offset + base
        jump = MAX_TOKEN_JUMP
        if value == COUNTER_SYNC_VALUE and not extended:
            jump = MAX_TOKEN_JUMP_COUNTER_SYNC
        seen_older = False
        for count in range(counts.count + jump + 1):
            if current - current % offset + base == token:
                kind = self._kind(count, value, extended)
                if counts.valid(count, value, kind):
                    return kind, value, count
                seen_older = True
            current = step(current)
        return (USED if seen_older else INVALID), None, None

    def _kind(self, count, value, extended):
        if not count % 2:
            return ADD
        if extended:
            return SET
        if value == COUNTER_SYNC_VALUE:
            return COUNTER_SYNC
        if value == PAYG_DISABLE_VALUE:
            return DISABLE_PAYG
        return SET
