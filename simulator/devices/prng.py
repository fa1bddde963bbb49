# A tiny seeded random generator that gives the same numbers under CPython and MicroPython
# (MicroPython's `random` has no Random class, so per-meter streams need their own).

_MASK32 = 0xFFFFFFFF


class Prng:
    def __init__(self, seed=1):
        # Mix the seed so that nearby seeds (meter 1, meter 2) give unrelated streams.
        s = (int(seed) * 2654435761 + 0x9E3779B9) & _MASK32
        self._state = s or 0x6D2B79F5
        for _ in range(4):
            self.next32()

    def next32(self):
        x = self._state
        x ^= (x << 13) & _MASK32
        x ^= x >> 17
        x ^= (x << 5) & _MASK32
        self._state = x
        return x

    def below(self, n):
        """An integer in [0, n)."""
        if n <= 0:
            return 0
        return self.next32() % n

    def between(self, lo, hi):
        """An integer in [lo, hi], both ends included."""
        return lo + self.below(hi - lo + 1)

    def chance(self, p_per_million):
        """True with probability p_per_million / 1e6 (integers keep both interpreters equal)."""
        return self.below(1000000) < p_per_million

    def fork(self, salt):
        """An independent stream derived from this one's seed material and a salt."""
        return Prng((self._state ^ (int(salt) * 40503)) & _MASK32)
