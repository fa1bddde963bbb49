# micropython-heap: 208k (every firmware module's bytecode in the unix port's heap, and a boot per cut)
# Random power cuts during token entry and recharge: payments made by keypad token and by cloud
# recharge in a random order, the power cut at a random byte of a random one of their state
# writes, 1,000 cuts under CPython (600 under MicroPython, where a boot costs far more): no
# payment lost, none credited twice. The 10,000-cut run is bench/token_cuts.py, on this same
# function. (Its own module, for the heap: see test_openpaygo_torn.)
import gc
import sys

from appfakes import ManualClock
from support import tmpdir
from test_openpaygo_app import ADD, boot, recharge
from test_openpaygo_amounts import K10, K998, K999

_MICROPYTHON = sys.implementation.name == "micropython"


class _Prng:
    """xorshift32: the same cut positions on both interpreters (no `random` needed)."""

    def __init__(self, seed):
        self.x = seed or 1

    def below(self, n):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x % n


def _torn(target, old, new, rng):
    """Leave `target` as a write of `new` over `old` cut at a random byte."""
    cut = rng.below(len(new) + 1)
    with open(target, "wb") as f:
        f.write(memoryview(new)[:cut])
        if rng.below(2):
            f.write(memoryview(old)[cut:])


def random_cuts(name, cuts, seed=7, tokens=ADD):
    """Payments, each by keypad token and by cloud recharge in a random order, the power cut
    at a random byte of a random one of their state writes, `cuts` times in all; after every
    reboot the customer and the cloud try again. Returns (credited, wanted, cuts made)."""
    path = tmpdir(name)
    rng = _Prng(seed)
    app, clock = boot(path)
    app.persist()
    app.persist()
    wanted = app.ledger.balance
    made = 0
    seq = 0
    while made < cuts:
        seq += 1
        count, kes, token = tokens[(seq - 1) % len(tokens)]
        if seq > len(tokens):
            path = tmpdir(name)  # a new meter once the tokens run out: same key, fresh counts
            app, clock = boot(path)
            app.persist()
            app.persist()
            wanted = app.ledger.balance
            seq = 1
            count, kes, token = tokens[0]
        wanted += kes * 100
        steps = [lambda a: a.enter_token(token),
                 lambda a, s=seq, c=count, k=kes: a.apply_recharge(recharge(s, k * 100, c), "cloud")]
        if rng.below(2):
            steps.reverse()
        for _ in range(1 + rng.below(3)):  # a few cuts on this payment
            store = app.store
            target = store.slot_paths()[1 if store._newest == 0 else 0]
            with open(target, "rb") as f:
                old = f.read()
            steps[rng.below(2)](app)
            with open(target, "rb") as f:
                new = f.read()
            if new != old:
                _torn(target, old, new, rng)
                made += 1
            if _MICROPYTHON:
                gc.collect()
            app, _ = boot(path, ManualClock(t=clock.t))
        for step in steps:
            step(app)
        if app.ledger.balance != wanted:
            return app.ledger.balance, wanted, made
    return app.ledger.balance, wanted, made


def test_random_power_cuts_during_token_entry_and_recharge_credit_each_payment_once():
    cuts = 600 if _MICROPYTHON else 1000
    credited, wanted, made = random_cuts("tok_random", cuts)
    assert credited == wanted, (credited, wanted, made)
    assert made >= cuts


def test_random_power_cuts_with_kes_999_and_998_payments_credit_each_once():
    # their 12-digit tokens: 999 and 998 are amounts there, not the standard's codes
    cuts = 100 if _MICROPYTHON else 1000
    credited, wanted, made = random_cuts("tok_random_amt", cuts, seed=11,
                                         tokens=[K999, K998, K10])
    assert credited == wanted, (credited, wanted, made)
    assert made >= cuts
