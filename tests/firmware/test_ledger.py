# Ledger: integer cents, debt carried into the next credit, threshold alerts, recent credits.
from meter.ledger import Ledger, LedgerError
from support import raises


def test_credit_and_debit_move_balance_and_totals():
    led = Ledger(balance_cents=500)
    assert led.credit(10000, "QK1", 100) == 10500
    assert led.debit(250) == 10250
    assert led.balance == 10250
    assert led.total_credited == 10000
    assert led.total_debited == 250


def test_debit_may_go_negative_and_next_credit_pays_the_debt():
    led = Ledger(balance_cents=100)
    led.debit(400)
    assert led.balance == -300
    led.credit(1000, "QK2", 5)
    assert led.balance == 700


def test_debit_of_zero_changes_nothing_but_is_allowed():
    led = Ledger(balance_cents=7)
    led.debit(0)
    assert led.balance == 7 and led.total_debited == 0


def test_bad_amounts_are_refused_without_changing_anything():
    led = Ledger(balance_cents=1000)
    for bad in (0, -5, True, False, 1.5, "100", None):
        raises(LedgerError, led.credit, bad, "R", 1)
    for bad in (-1, True, 2.0, "3", None):
        raises(LedgerError, led.debit, bad)
    raises(LedgerError, led.credit, 100, 42, 1)  # ref must be a str
    raises(LedgerError, led.credit, 100, "R", 1.5)  # time must be an int
    assert led.balance == 1000
    assert led.total_credited == 0 and led.total_debited == 0
    assert led.recent == []


def test_ledger_errors_are_value_errors():
    assert isinstance(raises(LedgerError, Ledger, True), ValueError)
    raises(LedgerError, Ledger, 0, 10000, 2000, -1)


def test_alerts_raise_at_threshold_and_clear_when_credit_lifts_above():
    led = Ledger(balance_cents=10001, low_cents=10000, critical_cents=2000)
    assert led.alerts() == {"low_balance": False, "critical_balance": False}
    led.debit(1)  # exactly at the low threshold counts as low
    assert led.alerts() == {"low_balance": True, "critical_balance": False}
    led.debit(7999)  # 2001
    assert led.alerts()["critical_balance"] is False
    led.debit(1)  # 2000: at critical
    assert led.alerts() == {"low_balance": True, "critical_balance": True}
    led.credit(1, "R1", 1)  # 2001: above critical, still low
    assert led.alerts() == {"low_balance": True, "critical_balance": False}
    led.credit(8000, "R2", 2)  # 10001
    assert led.alerts() == {"low_balance": False, "critical_balance": False}


def test_recent_keeps_last_credits_newest_last():
    led = Ledger(keep=3)
    for i in range(1, 6):
        led.credit(i * 100, "R%d" % i, i)
    assert led.recent == [("R3", 300, 3), ("R4", 400, 4), ("R5", 500, 5)]
    led.debit(50)  # debits are not credits
    assert len(led.recent) == 3


def test_keep_zero_remembers_nothing():
    led = Ledger(keep=0)
    led.credit(100, "R", 1)
    assert led.recent == [] and led.balance == 100


def test_round_trip_through_dict_and_json():
    import json
    led = Ledger(balance_cents=-20, keep=2)
    led.credit(5000, "QK1", 10)
    led.credit(300, "QK2", 20)
    led.credit(700, "QK3", 30)
    led.debit(125)
    d = json.loads(json.dumps(led.to_dict()))
    back = Ledger.from_dict(d, low_cents=1, critical_cents=0, keep=2)
    assert back.balance == led.balance == 5855
    assert back.total_credited == 6000 and back.total_debited == 125
    assert back.recent == [("QK2", 300, 20), ("QK3", 700, 30)]
    assert back.low_cents == 1 and back.critical_cents == 0
    assert back.to_dict() == led.to_dict()


def test_from_dict_trims_recent_to_a_smaller_keep():
    led = Ledger(keep=5)
    for i in range(5):
        led.credit(10 + i, "R%d" % i, i)
    back = Ledger.from_dict(led.to_dict(), keep=2)
    assert back.recent == [("R3", 13, 3), ("R4", 14, 4)]


def test_from_dict_rejects_garbage():
    good = Ledger(balance_cents=5).to_dict()
    raises(LedgerError, Ledger.from_dict, [1, 2])
    raises(LedgerError, Ledger.from_dict, {})
    for key, bad in (("balance_cents", "5"), ("balance_cents", True), ("total_credited", -1),
                     ("total_debited", 1.0), ("recent", "x"), ("recent", [["R", 1]]),
                     ("recent", [[1, 2, 3]]), ("recent", [["R", False, 3]])):
        d = dict(good)
        d[key] = bad
        raises(LedgerError, Ledger.from_dict, d)
