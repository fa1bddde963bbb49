"""SipHash-2-4 in integer operations only, for the OpenPAYGo token decoder (meter.openpaygo).

Each 64-bit lane is kept as two 32-bit halves: on the 64-bit unix port those stay small ints
(a 64-bit value would be a heap-allocated big int in every operation), and the code needs no
host module (no struct, no hashlib). Lanes are ordered v0 hi, v0 lo, v1 hi, ... v3 lo.
"""
from micropython import const

_M = const(0xFFFFFFFF)


def _rounds(v, n):
    """n SipRounds on the 8-half state list v, in place."""
    a, b, c, d, e, f, g, h = v  # v0=(a,b) v1=(c,d) v2=(e,f) v3=(g,h)
    for _ in range(n):
        # v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
        b += d
        a = (a + c + (b >> 32)) & _M
        b &= _M
        c, d = ((c << 13) | (d >> 19)) & _M, ((d << 13) | (c >> 19)) & _M
        c ^= a
        d ^= b
        a, b = b, a
        # v2 += v3; v3 <<<= 16; v3 ^= v2
        f += h
        e = (e + g + (f >> 32)) & _M
        f &= _M
        g, h = ((g << 16) | (h >> 16)) & _M, ((h << 16) | (g >> 16)) & _M
        g ^= e
        h ^= f
        # v0 += v3; v3 <<<= 21; v3 ^= v0
        b += h
        a = (a + g + (b >> 32)) & _M
        b &= _M
        g, h = ((g << 21) | (h >> 11)) & _M, ((h << 21) | (g >> 11)) & _M
        g ^= a
        h ^= b
        # v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
        f += d
        e = (e + c + (f >> 32)) & _M
        f &= _M
        c, d = ((c << 17) | (d >> 15)) & _M, ((d << 17) | (c >> 15)) & _M
        c ^= e
        d ^= f
        e, f = f, e
    v[0] = a
    v[1] = b
    v[2] = c
    v[3] = d
    v[4] = e
    v[5] = f
    v[6] = g
    v[7] = h


def _le32(data, i):
    return data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)


def key_state(key):
    """The initial state for a 16-byte key; computed once per key and copied per hash."""
    if len(key) != 16:
        raise ValueError("a SipHash key is 16 bytes")
    k0h, k0l = _le32(key, 4), _le32(key, 0)
    k1h, k1l = _le32(key, 12), _le32(key, 8)
    return (k0h ^ 0x736F6D65, k0l ^ 0x70736575, k1h ^ 0x646F7261, k1l ^ 0x6E646F6D,
            k0h ^ 0x6C796765, k0l ^ 0x6E657261, k1h ^ 0x74656462, k1l ^ 0x79746573)


def _compress(v, mh, ml):
    v[6] ^= mh
    v[7] ^= ml
    _rounds(v, 2)
    v[0] ^= mh
    v[1] ^= ml


def _finish(v):
    v[5] ^= 0xFF
    _rounds(v, 4)
    return v[0] ^ v[2] ^ v[4] ^ v[6], v[1] ^ v[3] ^ v[5] ^ v[7]


def hash_words(state, words, length):
    """SipHash-2-4 of a message already split into little-endian 64-bit words, each given
    as (hi, lo) halves, with `length` bytes in all: the token chain hashes one 8-byte word
    per step and this skips building bytes for it. Returns the hash as (hi, lo)."""
    v = list(state)
    for mh, ml in words:
        _compress(v, mh, ml)
    _compress(v, (length & 0xFF) << 24, 0)
    return _finish(v)


def siphash24(key, data):
    """SipHash-2-4 of bytes `data` under a 16-byte key, as an int (the reference's hash())."""
    v = list(key_state(key))
    n = len(data)
    end = n - (n % 8)
    for i in range(0, end, 8):
        _compress(v, _le32(data, i + 4), _le32(data, i))
    hi = (n & 0xFF) << 24
    lo = 0
    for j in range(n - end):
        if j < 4:
            lo |= data[end + j] << (8 * j)
        else:
            hi |= data[end + j] << (8 * (j - 4))
    _compress(v, hi, lo)
    hi, lo = _finish(v)
    return (hi << 32) | lo
