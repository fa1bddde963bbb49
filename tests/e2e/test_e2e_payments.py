"""A payment becomes electricity, end to end on real processes: STK push and paybill through
the Daraja stand-in, the cloud, the broker (amqtt and mosquitto) and the real firmware on a
simulated meter; and the bad days: refused payments, lost, repeated and reordered callbacks."""
import pytest

from mita_procs import paybill, wait_until

WAIT_S = 30  # every wait is bounded; a failure names what it waited for


def wait_credited(meter, cents, what=None):
    """The meter itself has exactly `cents` credited in total and its relay closed."""
    return meter.wait(lambda s: s.get("credited_cents") == cents and s.get("relay_closed"),
                      WAIT_S, what or "meter %s credited %d cents in total, relay closed"
                      % (meter.meter_no, cents))


def wait_stk(cloud, checkout_id, status):
    return wait_until(lambda: (lambda r: r if r["status"] == status else None)(
        cloud.stk_status(checkout_id)), WAIT_S, "STK request %s %s" % (checkout_id, status))


def paid_once(e2e, meter, kes, earlier_cents=0):
    """A further payment as a barrier: once the meter has it, any duplicate credit sent before
    it would have arrived too (recharges go to a meter in order), so the total is exact."""
    push = e2e.cloud.stk_push(meter.meter_no, kes)
    wait_credited(meter, earlier_cents + kes * 100,
                  "the barrier payment, and nothing more, on top of %d cents" % earlier_cents)
    return push


def test_stk_push_success_credits_once_and_closes_the_relay(e2e):
    # 20 cents at 2 kW runs out in seconds: the relay opens at zero by itself first.
    meter = e2e.meter(balance_cents=20, watts=2000)
    meter.wait(lambda s: not s["relay_closed"] and s["balance_cents"] <= 0, WAIT_S,
               "the relay to open at zero balance")
    push = e2e.cloud.stk_push(meter.meter_no, 50)
    assert push["status"] == "pending"
    state = wait_credited(meter, 5000)
    assert state["relay_closed"]
    request = wait_stk(e2e.cloud, push["checkout_request_id"], "success")
    assert request["transaction_id"]
    transactions = e2e.cloud.transactions(meter.meter_no)
    assert [t["amount_cents"] for t in transactions] == [5000]
    assert e2e.cloud.meter(meter.meter_no)["recharge_seq"] == 1
    paid_once(e2e, meter, 10, earlier_cents=5000)


@pytest.mark.parametrize("outcome, code, why", [("cancelled", 1032, "cancelled"),
                                                ("unreachable", 1037, "could not be reached"),
                                                ("wrong_pin", 2001, "PIN")])
def test_refused_stk_push_gives_no_credit_and_says_why(e2e, outcome, code, why):
    meter = e2e.meter()
    e2e.daraja.outcome(outcome, once=True)
    push = e2e.cloud.stk_push(meter.meter_no, 40)
    request = wait_stk(e2e.cloud, push["checkout_request_id"], "failed")
    assert request["result_code"] == code
    assert request["transaction_id"] is None
    assert why in request["reason"]  # the customer is told why, in words
    assert request["result_desc"]    # and M-Pesa's own text is kept
    assert e2e.cloud.transactions(meter.meter_no) == []
    assert e2e.cloud.meter(meter.meter_no)["recharge_seq"] == 0
    assert meter.state["credited_cents"] == 0 and not meter.state["relay_closed"]
    # The refused push left nothing queued for the meter: the next payment is all it gets.
    paid_once(e2e, meter, 10)


def test_lost_callback_is_settled_by_stk_query_and_credited_once(e2e):
    meter = e2e.meter()
    e2e.daraja.outcome("none", once=True)  # the customer pays; M-Pesa never calls back
    push = e2e.cloud.stk_push(meter.meter_no, 60)
    assert e2e.cloud.stk_status(push["checkout_request_id"])["status"] == "pending"
    wait_credited(meter, 6000, "the settle task's STK query to credit the lost payment")
    request = wait_stk(e2e.cloud, push["checkout_request_id"], "success")
    assert request["transaction_id"]
    assert len(e2e.cloud.transactions(meter.meter_no)) == 1
    paid_once(e2e, meter, 10, earlier_cents=6000)


def test_the_same_callback_three_times_credits_once(e2e):
    meter = e2e.meter()
    e2e.daraja.outcome("success", deliver_times=3, once=True)
    push = e2e.cloud.stk_push(meter.meter_no, 30)
    wait_credited(meter, 3000)
    e2e.daraja.replay(push["checkout_request_id"], times=3)  # and three more, later
    assert len(e2e.cloud.transactions(meter.meter_no)) == 1
    paid_once(e2e, meter, 10, earlier_cents=3000)
    assert len(e2e.cloud.transactions(meter.meter_no)) == 2
    assert e2e.cloud.meter(meter.meter_no)["recharge_seq"] == 2


def test_callbacks_out_of_order_with_a_second_payment(e2e):
    meter = e2e.meter()
    e2e.daraja.outcome("success", hold=True)  # both stay pending until settled below
    first = e2e.cloud.stk_push(meter.meter_no, 30)["checkout_request_id"]
    second = e2e.cloud.stk_push(meter.meter_no, 70)["checkout_request_id"]
    e2e.daraja.clear_outcomes()
    e2e.daraja.settle(second)  # the later payment's callback comes first
    wait_credited(meter, 7000, "the second payment, called back first")
    e2e.daraja.settle(first)
    wait_credited(meter, 10000, "both payments")
    e2e.daraja.replay(first, times=2)
    e2e.daraja.replay(second, times=2)
    assert sorted(t["amount_cents"] for t in e2e.cloud.transactions(meter.meter_no)) == [
        3000, 7000]
    paid_once(e2e, meter, 10, earlier_cents=10000)


def test_paybill_with_the_meter_number_in_lower_case_with_spaces(e2e):
    meter = e2e.meter(e2e.new_meter_no("PB"))
    typed = " " + " ".join(meter.meter_no.lower()[i:i + 2]
                           for i in range(0, len(meter.meter_no), 2)) + " "
    assert typed.strip().lower() != meter.meter_no.lower()  # really typed differently
    paybill(e2e.daraja.url, typed, 80)
    wait_credited(meter, 8000, "the paybill payment to reach meter %s typed as %r"
                  % (meter.meter_no, typed))
    assert [t["amount_cents"] for t in e2e.cloud.transactions(meter.meter_no)] == [8000]
    paid_once(e2e, meter, 10, earlier_cents=8000)
