# micropython-heap: 160k (imports every firmware module: bytecode lives in the unix port's heap)
# A power cut at every byte of the app's own state write: each torn image boots to a meter that
# bills every Wh once and brings the relay back without a flicker. (Its own module: a boot a
# byte needs the heap the other review tests' bytecode would take.)
import gc
import sys

from meter.storage import encode
from reviewfakes import WrappingClock, boot, make_config, run
from support import tmpdir

_MICROPYTHON = sys.implementation.name == "micropython"


def test_a_power_cut_at_every_byte_of_a_state_write_bills_every_wh_once():
    path = tmpdir("rv_torn")
    clock = WrappingClock(ms=0)
    cfg = make_config()
    app, board, line = boot(path, cfg, clock)
    # 43.21 kW: about 12 Wh a second, so the 1 kWh band edge falls between the last periodic
    # save and the cut, and the sub-cent remainders never come out even.
    line.power_w = 43210
    run(app, clock, 61)  # persisted once at 60 s with energy on it
    run(app, clock, 30)
    store = app.store
    target = store.slot_paths()[1 if store._newest == 0 else 0]
    with open(target, "rb") as f:
        old = f.read()
    image = encode(app.state(), store.seq + 1)
    # What the uncut meter holds after one more second: the reference for every cut.
    run(app, clock, 1)
    want_balance = app.ledger.balance
    want_wh = app.energy.total_wh
    assert app.biller.month_wh > 1000 > app.store.load()["biller"]["month_wh"]
    counter = line.counter
    step = 1 if len(image) < 1200 else 3
    for cut in range(0, len(image) + 1, step):
        with open(target, "wb") as f:
            f.write(memoryview(image)[:cut])
            f.write(memoryview(old)[cut:])
        if _MICROPYTHON:
            gc.collect()  # a boot a byte fragments the capped heap; cheap there, slow here
        again = WrappingClock(t=clock.t, ms=clock.ms)
        app2, board2, line2 = boot(path, cfg, again, counter=counter)
        assert board2.relay.is_closed(), cut  # the relay comes back closed, no flicker
        assert board2.relay_pin.history == [], cut
        again.advance(1000)
        app2.tick()
        assert app2.ledger.balance == want_balance, cut
        assert app2.energy.total_wh == want_wh, cut
