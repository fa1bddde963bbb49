"""OpenPAYGo Token decoding on the meter: 9-digit standard and 12-digit extended tokens.

Follows the reference implementation (EnAccess's PyPI `openpaygo` 0.6.3) rule for rule, and
tests/firmware/test_openpaygo.py checks every verdict against it, but for one rule it applies
where the standard does not: the 9-digit special values 998 and 999 are amounts in an extended
token (token_counts.special_value). A token is the starting
code's chain of SipHash-2-4 steps run `count` times, with the value (obscured by the starting
code's last three, or six, digits) written into its last digits. Decoding tries every count
from 0 to last_count + MAX_TOKEN_JUMP (+ the larger jump for counter sync); the first valid
match wins, and a match that is not valid (a used or too old count) makes the token USED.

Value unit on a mita meter: 1 token unit = KES 1 = 100 cents (see UNIT_CENTS).
Pure logic: no hardware, no clock. The count window (TokenCounts) is part of the meter's
power-safe state image, saved with the credit it guards (meter.recharge).
"""
from micropython import const

from meter.digits import ascii_digits
from meter.siphash import hash_words, key_state, siphash24
from meter.token_counts import (ADD, COUNTER_SYNC, COUNTER_SYNC_VALUE, DISABLE_PAYG, INVALID,
                                MAX_TOKEN_JUMP, MAX_TOKEN_JUMP_COUNTER_SYNC, PAYG_DISABLE_VALUE,
                                SET, USED, TokenError, special_value)

_M = const(0xFFFFFFFF)


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
        not changed: verdict ADD, SET, DISABLE_PAYG, COUNTER_SYNC, USED or INVALID; value is
        None unless accepted, count None for INVALID (for USED it is the used count, which
        tells a used token from one too old to tell: counts.below_window). Apply an accepted
        token with counts.record(count, verdict, special_value(value, token))."""
        if not isinstance(token, str) or not ascii_digits(token):
            return INVALID, None, None
        if len(token) <= 9:
            return self._search(token, counts, 1000, self._next, False)
        if len(token) <= 12:
            return self._search(token, counts, 1000000, self._next_extended, True)
        return INVALID, None, None

    def _search(self, digits, counts, offset, step, extended):
        token = int(digits)
        base = token % offset
        value = (base - self.code % offset) % offset
        current = self.code - self.code % offset + base
        special = special_value(value, digits)
        jump = MAX_TOKEN_JUMP
        if special == COUNTER_SYNC_VALUE:
            jump = MAX_TOKEN_JUMP_COUNTER_SYNC
        older = None  # the first count that matched but was no longer valid
        for count in range(counts.count + jump + 1):
            if current - current % offset + base == token:
                kind = self._kind(count, value, extended)
                if counts.valid(count, kind, special):
                    return kind, value, count
                if older is None:
                    older = count
            current = step(current)
        if older is not None:
            return USED, None, older
        return INVALID, None, None

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
