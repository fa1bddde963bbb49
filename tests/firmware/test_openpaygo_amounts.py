# micropython-heap: 160k (imports every firmware module: bytecode lives in the unix port's heap)
# Payments of KES 998 and 999: in a 9-digit OpenPAYGo token those values are the standard's
# PAYG-disable and counter-sync codes, but a payment of that size gets a 12-digit extended
# token, where they are amounts like any other. Each credits exactly once, typed twice, over
# MQTT and the keypad in either order, and neither spends the counts of earlier payments.
from meter.token_counts import COUNTER_SYNC, DISABLE_PAYG
from test_openpaygo_app import boot, recharge
from support import tmpdir

# (count, KES, token) from the PyPI openpaygo encoder with test_openpaygo_app's key and code:
# openpaygo_cases.amount_tokens(), checked against it by tests/test_openpaygo_reference.py
K999 = (2, 999, "849278829181")
K998 = (4, 998, "998622829180")
K10 = (6, 10, "663433192")
# (count, digits, value): 9-digit ADD tokens of 999 and 998 after count 6, which no compliant
# server makes (openpaygo_cases.special_add_tokens()): the standard's codes, never a credit
SPECIAL_ADDS = [(8, "845191181", 999), (8, "514248180", 998)]


def test_a_kes_999_or_998_token_typed_twice_credits_once():
    for count, kes, digits in (K999, K998):
        app, _ = boot(tmpdir("amt_twice_%d" % kes))
        start = app.ledger.balance
        assert app.enter_token(digits) == ("ACCEPT", kes * 100)
        assert app.enter_token(digits) == ("USED", 0)
        assert app.ledger.balance == start + kes * 100, count


def _both_paths(name, first_online, token):
    """The payment of `token` over MQTT (as seq 1) and as typed digits, in one order."""
    app, _ = boot(tmpdir(name))
    start = app.ledger.balance
    count, kes, digits = token
    msg = recharge(1, kes * 100, count=count)
    if first_online:
        assert app.apply_recharge(msg, "cloud") == ("applied", "ok")
        assert app.enter_token(digits) == ("USED", 0)
    else:
        assert app.enter_token(digits) == ("ACCEPT", kes * 100)
        assert app.apply_recharge(msg, "cloud") == ("duplicate", "token_used")
    assert app.apply_recharge(msg, "cloud")[0] == "duplicate"  # a re-sent recharge
    assert app.enter_token(digits) == ("USED", 0)  # and the token typed once more
    assert app.ledger.balance == start + kes * 100
    return app


def test_kes_999_over_mqtt_then_typed_credits_once():
    _both_paths("amt_999_mq", True, K999)


def test_kes_999_typed_then_over_mqtt_credits_once():
    _both_paths("amt_999_kp", False, K999)


def test_kes_998_over_mqtt_then_typed_credits_once():
    _both_paths("amt_998_mq", True, K998)


def test_kes_998_typed_then_over_mqtt_credits_once():
    _both_paths("amt_998_kp", False, K998)


def test_a_later_kes_998_or_999_payment_does_not_spend_an_earlier_ones_token():
    for first in (K998, K999):
        app, _ = boot(tmpdir("amt_order_%d" % first[1]))
        start = app.ledger.balance
        # a later payment (count 8) arrives online first; the earlier one's token (count 6)
        # is typed after it
        msg = recharge(1, first[1] * 100, count=8)
        assert app.apply_recharge(msg, "cloud") == ("applied", "ok")
        assert app.enter_token(K10[2]) == ("ACCEPT", 1000), first
        assert app.ledger.balance == start + first[1] * 100 + 1000


def test_kes_998_and_999_each_once_in_either_order_on_one_meter():
    for order in ((K999, K998), (K998, K999)):
        app, _ = boot(tmpdir("amt_pair_%d" % order[0][1]))
        start = app.ledger.balance
        seq = 0
        for count, kes, digits in order:
            seq += 1
            assert app.enter_token(digits) == ("ACCEPT", kes * 100), (order, kes)
            msg = recharge(seq, kes * 100, count=count)
            assert app.apply_recharge(msg, "cloud") == ("duplicate", "token_used")
        for count, kes, digits in order:
            assert app.enter_token(digits) == ("USED", 0)
        assert app.ledger.balance == start + 99900 + 99800


def test_a_9_digit_token_of_999_or_998_is_the_standards_code_and_credits_nothing():
    for count, digits, value in SPECIAL_ADDS:
        app, _ = boot(tmpdir("amt_code_%d" % value))
        start = app.ledger.balance
        assert app.enter_token(K10[2]) == ("ACCEPT", 1000)
        assert app.enter_token(digits) == ("ACCEPT", 0), value
        assert app.ledger.balance == start + 1000
        assert app.recharger.floor("token") == count
        # the last tokens list it as the code it is, not as KES credited
        assert app.tokens.recent[-1] == [count, {999: COUNTER_SYNC, 998: DISABLE_PAYG}[value], value]
