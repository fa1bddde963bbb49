# Recharge: exactly once per source:seq, forever, in bounded memory; bad messages change nothing.
import json

from meter.ledger import Ledger
from meter.recharge import Recharger, RechargeError, validate, MAX_ID_LEN
from support import raises


def msg(seq, amount=1000, source="cloud", ref=None):
    return {"id": ref if ref is not None else "QK%d" % seq, "seq": seq,
            "amount_cents": amount, "source": source}


def fresh(**kw):
    led = Ledger()
    return led, Recharger(led, **kw)


def test_apply_credits_the_ledger_once():
    led, rc = fresh()
    assert rc.apply(msg(1, 5000), 100) == ("applied", "ok")
    assert led.balance == 5000
    assert led.recent == [("QK1", 5000, 100)]
    assert rc.apply(msg(1, 5000), 101) == ("duplicate", "already_applied")
    assert led.balance == 5000
    assert (rc.applied_count, rc.duplicate_count, rc.rejected_count) == (1, 1, 0)


def test_duplicate_is_judged_by_source_and_seq_not_id():
    led, rc = fresh()
    rc.apply(msg(1, 100, ref="SAME"), 1)
    # same receipt id, new seq: a distinct credit the issuer numbered separately
    assert rc.apply(msg(2, 100, ref="SAME"), 2)[0] == "applied"
    # same seq, different id: still the same credit re-sent
    assert rc.apply(msg(2, 100, ref="OTHER"), 3)[0] == "duplicate"
    # same seq from another source is another credit
    assert rc.apply(msg(2, 100, source="token"), 4)[0] == "applied"
    assert led.balance == 300


def test_out_of_order_delivery_applies_each_once_and_floor_catches_up():
    led, rc = fresh(window=8)
    for seq in (3, 1, 5, 2, 4):
        assert rc.apply(msg(seq, 10 * seq), seq)[0] == "applied"
        assert rc.apply(msg(seq, 10 * seq), seq)[0] == "duplicate"
    assert rc.floor("cloud") == 5
    assert rc.state()["cloud"] == [5, 0]
    assert led.balance == 150


def test_gap_holds_floor_and_bitmap_remembers_later_seqs():
    led, rc = fresh(window=8)
    for seq in (1, 3, 4):
        rc.apply(msg(seq), 0)
    assert rc.floor("cloud") == 1
    assert rc.state()["cloud"] == [1, 0b110]  # bits for 3 and 4 (floor+2, floor+3)
    assert rc.seen("cloud", 4) and not rc.seen("cloud", 2)
    assert rc.apply(msg(2), 0)[0] == "applied"
    assert rc.state()["cloud"] == [4, 0]


def test_ahead_of_window_is_rejected_then_accepted_once_floor_moves():
    led, rc = fresh(window=4)
    assert rc.apply(msg(5), 1) == ("rejected", "ahead_of_window")
    assert led.balance == 0 and rc.state()["cloud"] == [0, 0]
    assert rc.apply(msg(4), 1)[0] == "applied"  # floor + window is still inside
    assert rc.apply(msg(1), 2)[0] == "applied"
    assert rc.apply(msg(5), 3)[0] == "applied"
    assert rc.apply(msg(6), 3) == ("rejected", "ahead_of_window")  # floor is 1: 6 > 1 + 4
    assert rc.rejected_count == 2 and led.balance == 3000


def test_a_very_late_resend_is_still_a_duplicate():
    led, rc = fresh(window=4)
    for seq in range(1, 201):
        rc.apply(msg(seq, 1), seq)
    assert rc.state()["cloud"] == [200, 0]  # bounded: nothing grows with history
    for seq in (1, 2, 100, 199, 200):
        assert rc.apply(msg(seq, 1), 999)[0] == "duplicate"
    assert led.balance == 200


def test_every_rejection_has_a_reason_and_changes_nothing():
    led, rc = fresh(max_cents=25000000)
    rc.apply(msg(1, 100), 1)
    before = (led.to_dict(), rc.state())
    cases = [
        ("not a dict", "malformed"),
        ([1, 2], "malformed"),
        ({"seq": 2, "amount_cents": 1, "source": "cloud"}, "malformed"),
        ({"id": "X", "amount_cents": 1, "source": "cloud"}, "malformed"),
        ({"id": "X", "seq": 2, "source": "cloud"}, "malformed"),
        ({"id": "X", "seq": 2, "amount_cents": 1}, "malformed"),
        (msg(2, ref=5), "malformed"),
        (dict(msg(2), source=None), "malformed"),
        (dict(msg(2), seq="2"), "malformed"),
        (dict(msg(2), seq=2.0), "malformed"),
        (dict(msg(2), seq=True), "malformed"),
        (dict(msg(2), seq=0), "bad_seq"),
        (dict(msg(2), seq=-3), "bad_seq"),
        (dict(msg(2), seq=1 << 32), "bad_seq"),
        (msg(2, source="mpesa"), "bad_source"),
        (msg(2, ref=""), "bad_id"),
        (msg(2, ref="x" * (MAX_ID_LEN + 1)), "bad_id"),
        (msg(2, amount=True), "bad_amount"),
        (msg(2, amount=10.0), "bad_amount"),
        (msg(2, amount="10"), "bad_amount"),
        (msg(2, amount=None), "bad_amount"),
        (msg(2, amount=0), "zero"),
        (msg(2, amount=-100), "negative"),
        (msg(2, amount=25000001), "too_large"),
    ]
    for m, reason in cases:
        assert rc.apply(m, 2) == ("rejected", reason), (m, reason)
    assert (led.to_dict(), rc.state()) == before
    assert rc.rejected_count == len(cases)
    # the boundaries themselves are fine
    assert rc.apply(msg(2, amount=25000000, ref="x" * MAX_ID_LEN), 3) == ("applied", "ok")
    assert rc.apply(msg(3, amount=1), 3) == ("applied", "ok")


def test_invalid_resend_of_an_applied_seq_is_rejected_not_applied():
    led, rc = fresh()
    rc.apply(msg(1, 100), 1)
    assert rc.apply(msg(1, 0), 2) == ("rejected", "zero")
    assert led.balance == 100


def test_validate_raises_recharge_error_with_reason():
    exc = raises(RechargeError, validate, msg(1, amount=-1), 100)
    assert exc.reason == "negative"
    assert isinstance(exc, ValueError)
    validate(msg(1, amount=100), 100)


def test_state_survives_json_and_restores_exactly_once():
    led, rc = fresh(window=64)
    for seq in (1, 2, 5, 64, 66):
        rc.apply(msg(seq, 10), seq)
    rc.apply(msg(7, 10, source="token"), 9)
    saved = json.loads(json.dumps({"ledger": led.to_dict(), "recharge": rc.state()}))
    led2 = Ledger.from_dict(saved["ledger"])
    rc2 = Recharger(led2, window=64, state=saved["recharge"])
    for seq in (1, 2, 5, 64, 66):
        assert rc2.apply(msg(seq, 10), 99)[0] == "duplicate"
    assert rc2.apply(msg(7, 10, source="token"), 99)[0] == "duplicate"
    assert rc2.apply(msg(3, 10), 99)[0] == "applied"
    assert rc2.apply(msg(6, 10, source="token"), 99)[0] == "applied"
    assert led2.balance == 80
    assert rc2.state()["cloud"][0] == 3


def test_wide_bitmap_near_window_edge_round_trips():
    # the last seq of a 64-wide window sets bit 63: must survive JSON on both interpreters
    led, rc = fresh(window=64)
    assert rc.apply(msg(64), 1)[0] == "applied"
    state = json.loads(json.dumps(rc.state()))
    assert state["cloud"] == [0, 1 << 63]
    rc2 = Recharger(Ledger(), window=64, state=state)
    assert rc2.apply(msg(64), 2)[0] == "duplicate"


def test_restored_state_with_contiguous_bits_is_normalised():
    rc = Recharger(Ledger(), window=8, state={"cloud": [2, 0b1011]})
    assert rc.floor("cloud") == 4  # seqs 3 and 4 were applied: floor slides over them
    assert rc.seen("cloud", 6) and not rc.seen("cloud", 5)


def test_restore_rejects_bad_state():
    for bad in ([1], {"mpesa": [0, 0]}, {"cloud": [0]}, {"cloud": [-1, 0]},
                {"cloud": ["0", 0]}, {"cloud": [0, -1]}, {"cloud": (0, 0)}):
        assert raises(RechargeError, Recharger, Ledger(), 100, 8, bad).reason == "bad_state"


def test_constructor_checks_limits():
    raises(ValueError, Recharger, Ledger(), 0)
    raises(ValueError, Recharger, Ledger(), True)
    raises(ValueError, Recharger, Ledger(), 100, 0)


def test_credit_and_its_seq_persist_in_one_write_and_survive_a_power_cut():
    from meter.storage import StateStore, encode
    from support import tmpdir
    root = tmpdir("rc_persist")
    led, rc = fresh()
    store = StateStore(root)
    store.load()

    def save():
        return store.save({"ledger": led.to_dict(), "recharge": rc.state()})

    assert rc.apply(msg(1, 5000), 10)[0] == "applied"
    save()
    # credit 2 is applied in RAM, but the power dies mid-save: it was never acknowledged
    assert rc.apply(msg(2, 700), 11)[0] == "applied"
    image = encode({"ledger": led.to_dict(), "recharge": rc.state()}, store.seq + 1)
    with open(store.slot_paths()[1], "wb") as f:
        f.write(image[: len(image) // 2])

    def boot():
        saved = StateStore(root).load()
        assert saved is not None
        led2 = Ledger.from_dict(saved["ledger"])
        return led2, Recharger(led2, state=saved["recharge"])

    led, rc = boot()
    assert led.balance == 5000  # neither the credit nor its seq was kept
    assert rc.apply(msg(1, 5000), 12)[0] == "duplicate"
    assert rc.apply(msg(2, 700), 12)[0] == "applied"  # the cloud's re-send applies once
    store = StateStore(root)
    store.load()
    save()
    led, rc = boot()
    assert rc.apply(msg(2, 700), 13)[0] == "duplicate"
    assert led.balance == 5700


def test_advance_floor_resyncs_after_lost_state_and_never_lowers():
    led, rc = fresh(window=8)
    # state was lost: the cloud is already at seq 200, far ahead of a floor of 0
    assert rc.apply(msg(201), 1) == ("rejected", "ahead_of_window")
    assert rc.advance_floor("cloud", 200) is True
    assert rc.apply(msg(200), 2)[0] == "duplicate"  # acknowledged before: never again
    assert rc.apply(msg(201), 3)[0] == "applied"
    assert rc.advance_floor("cloud", 100) is False  # lowering would re-open old seqs
    assert rc.floor("cloud") == 201
    assert rc.apply(msg(150), 4)[0] == "duplicate"
    assert rc.floor("token") == 1  # the token count (a fresh meter's 1) is left alone
    assert led.balance == 1000


def test_advance_floor_keeps_bits_above_the_new_floor():
    led, rc = fresh(window=8)
    for seq in (3, 6, 7):
        rc.apply(msg(seq), 0)
    assert rc.advance_floor("cloud", 4) is True
    # 6 and 7 stay remembered; 5 is the only gap, and filling it slides the floor to 7
    assert rc.seen("cloud", 6) and rc.seen("cloud", 7) and not rc.seen("cloud", 5)
    assert rc.apply(msg(7), 0)[0] == "duplicate"
    assert rc.apply(msg(5), 0)[0] == "applied"
    assert rc.state()["cloud"] == [7, 0]
    assert rc.advance_floor("cloud", 9) is True and rc.state()["cloud"] == [9, 0]


def test_advance_floor_rejects_bad_arguments():
    led, rc = fresh()
    assert raises(RechargeError, rc.advance_floor, "mpesa", 3).reason == "bad_source"
    for bad in (-1, True, "3", 1 << 32):
        assert raises(RechargeError, rc.advance_floor, "cloud", bad).reason == "bad_seq"
    # token counts are resynced by a counter sync token, never by the cloud's floor
    assert raises(RechargeError, rc.advance_floor, "token", 3).reason == "bad_source"
    assert rc.state() == {"cloud": [0, 0], "token": [1, 1, 1]}
