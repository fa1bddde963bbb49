# micropython-heap: 160k (imports every firmware module: bytecode lives in the unix port's heap)
# Keypad tokens in the app: one credit path with the cloud's recharges (whichever comes first
# credits, the other is a duplicate), persisted before the answer, and a lock-out after invalid
# entries that a reboot keeps. Power cuts during a token credit: test_openpaygo_torn.py.
from meter.app import MeterApp
from meter.storage import StateStore
from appfakes import FakeBoard, ManualClock, make_config
from support import tmpdir

KEY = "0123456789abcdef0123456789abcdef"
CODE = 271828182
# (count, KES, token) from the PyPI openpaygo encoder: openpaygo_cases.app_tokens(), checked
# against it by tests/test_openpaygo_reference.py
ADD = [(2, 10, "063517192"), (4, 20, "180485202"), (6, 30, "984924212"), (8, 40, "474968222"),
       (10, 50, "548616232"), (12, 60, "715994242"), (14, 70, "205284252"),
       (16, 80, "982332262"), (18, 90, "904520272"), (20, 100, "099810282"),
       (22, 110, "834692292"), (24, 120, "373758302")]
SET = (25, 250, "559057432")


def config(**over):
    cfg = make_config(**over)
    cfg["token"] = {"key": KEY, "starting_code": CODE}
    return cfg


def boot(path, clock=None, cfg=None):
    clock = clock or ManualClock()
    app = MeterApp(cfg or config(), StateStore(path), clock)
    app.attach(FakeBoard(clock, app.relay_at_boot()))
    return app, clock


def recharge(seq, cents, count=None):
    msg = {"id": "QK%d" % seq, "seq": seq, "amount_cents": cents, "source": "cloud"}
    if count is not None:
        msg["token_count"] = count
    return msg


def test_a_typed_token_credits_once_and_is_on_flash_before_the_answer():
    path = tmpdir("tok_accept")
    app, _ = boot(path)
    start = app.ledger.balance
    assert app.enter_token(ADD[0][2]) == ("ACCEPT", 1000)
    assert app.ledger.balance == start + 1000
    again, _ = boot(path)  # what a power cut right after the answer would boot to
    assert again.ledger.balance == start + 1000
    assert again.enter_token(ADD[0][2]) == ("USED", 0)
    assert again.ledger.balance == start + 1000
    assert again.tokens.recent == [[2, 1, 10]]


def test_the_cloud_recharge_first_then_the_typed_token_is_used():
    app, _ = boot(tmpdir("tok_cloud_first"))
    start = app.ledger.balance
    assert app.apply_recharge(recharge(1, 2000, count=4), "cloud") == ("applied", "ok")
    assert app.enter_token(ADD[1][2]) == ("USED", 0)
    assert app.ledger.balance == start + 2000
    # a token of an earlier payment, not delivered online, still credits (out of order)
    assert app.enter_token(ADD[0][2]) == ("ACCEPT", 1000)
    assert app.ledger.balance == start + 3000


def test_the_typed_token_first_then_the_cloud_recharge_is_a_duplicate_that_moves_the_floor():
    app, _ = boot(tmpdir("tok_typed_first"))
    start = app.ledger.balance
    assert app.enter_token(ADD[1][2]) == ("ACCEPT", 2000)
    assert app.apply_recharge(recharge(1, 2000, count=4), "cloud") == ("duplicate", "token_used")
    assert app.ledger.balance == start + 2000
    assert app.recharger.floor("cloud") == 1  # the seq is spent: later seqs are not held up
    assert app.apply_recharge(recharge(1, 2000, count=4), "cloud")[0] == "duplicate"
    assert app.apply_recharge(recharge(2, 3000, count=6), "cloud") == ("applied", "ok")
    assert app.ledger.balance == start + 5000


def test_a_token_older_than_the_window_is_old_and_one_reused_is_used():
    app, _ = boot(tmpdir("tok_old"))
    for count, kes, token in ADD[1:]:
        assert app.enter_token(token) == ("ACCEPT", kes * 100), count
    assert app.enter_token(ADD[0][2]) == ("OLD", 0)  # count 2 is below 24 - 16
    assert app.enter_token(ADD[-1][2]) == ("USED", 0)


def test_a_set_token_sets_the_balance():
    app, _ = boot(tmpdir("tok_set"))
    app.enter_token(ADD[0][2])
    assert app.enter_token(SET[2]) == ("ACCEPT", 25000)
    assert app.ledger.balance == 25000
    assert app.enter_token(SET[2]) == ("USED", 0)
    # a SET spends every count up to it: the ADD tokens issued before it are used now
    assert app.enter_token(ADD[5][2]) == ("USED", 0)


def test_invalid_entries_lock_the_keypad_for_growing_waits_that_a_reboot_keeps():
    path = tmpdir("tok_lock")
    app, clock = boot(path)
    for _ in range(3):
        assert app.enter_token("123456789") == ("INVALID", 0)  # typing mistakes are free
    assert app.enter_token("123456789") == ("INVALID", 1)
    assert app.enter_token(ADD[0][2]) == ("LOCKED", 1)  # even a good token waits
    again, clock2 = boot(path)  # the power cut does not forgive the wait
    assert again.enter_token(ADD[0][2]) == ("LOCKED", 1)
    for _ in range(61):
        clock2.advance(1000)
        again.tick()
    assert again.enter_token("123456780") == ("INVALID", 2)  # the next wait is twice as long
    for _ in range(119):
        clock2.advance(1000)
        again.tick()
    assert again.enter_token(ADD[0][2])[0] == "LOCKED"
    clock2.advance(1000)
    again.tick()
    assert again.enter_token(ADD[0][2]) == ("ACCEPT", 1000)
    assert again.tokens.lock.failures == 0  # a good token ends the run of failures


def test_no_key_no_tokens():
    app, _ = boot(tmpdir("tok_nokey"), cfg=make_config())
    assert app.enter_token(ADD[0][2]) == ("NO_TOKENS", 0)


def test_a_token_that_could_not_be_saved_is_not_applied():
    path = tmpdir("tok_nosave")
    app, _ = boot(path)
    start = app.ledger.balance
    app.store.root = path + "/gone"
    assert app.enter_token(ADD[0][2]) == ("ERROR", 0)
    assert app.ledger.balance == start and app.tokens.recent == []
    app.store.root = path
    assert app.enter_token(ADD[0][2]) == ("ACCEPT", 1000)
