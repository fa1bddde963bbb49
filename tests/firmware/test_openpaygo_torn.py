# micropython-heap: 208k (every firmware module's bytecode in the unix port's heap, and a boot per cut byte: 176k passes)
# A power cut at every byte of the state write that credits a payment, by keypad token or by
# cloud recharge carrying the token's count: after each torn image the meter boots, the
# customer types the token and the cloud re-delivers, and the payment is credited exactly once.
# (Its own module: a boot a byte needs the heap the other token tests' objects would take.)
import gc
import sys

from appfakes import ManualClock
from support import tmpdir
from test_openpaygo_app import ADD, boot, recharge

_MICROPYTHON = sys.implementation.name == "micropython"


PAYMENT_CENTS = 3000  # ADD[2]: count 6, KES 30


def _type_token(app):
    app.enter_token(ADD[2][2])


def _deliver(app):
    app.apply_recharge(recharge(1, PAYMENT_CENTS, count=ADD[2][0]), "cloud")


def _cut_every_byte(name, first, then):
    """Cut the state write that `first` makes at every byte (as a truncated file and as a new
    prefix over the old bytes), boot, let the customer and the cloud retry (`first`, then
    `then`): the payment must be credited exactly once after every cut. Returns the cuts."""
    path = tmpdir(name)
    app, clock = boot(path)
    app.persist()
    app.persist()  # both slots on flash: the cut write goes over an old image
    want = app.ledger.balance + PAYMENT_CENTS
    store = app.store
    target = store.slot_paths()[1 if store._newest == 0 else 0]
    with open(target, "rb") as f:
        old = f.read()
    first(app)
    with open(target, "rb") as f:
        image = f.read()
    assert app.ledger.balance == want
    cuts = 0
    for cut in range(len(image) + 1):
        for tail in (b"", old[cut:]):
            with open(target, "wb") as f:
                f.write(memoryview(image)[:cut])
                f.write(tail)
            if _MICROPYTHON:
                gc.collect()
            again, _ = boot(path, ManualClock(t=clock.t))
            first(again)
            then(again)
            assert again.ledger.balance == want, (cut, len(tail))
            cuts += 1
    return cuts


def test_a_power_cut_at_any_byte_of_a_token_credit_neither_loses_nor_doubles_it():
    assert _cut_every_byte("tok_cut", _type_token, _deliver) > 400


def test_a_power_cut_at_any_byte_of_a_cloud_credit_neither_loses_nor_doubles_it():
    assert _cut_every_byte("tok_cut_cloud", _deliver, _type_token) > 400

