"""Payments made while the meter cannot hear the cloud: switched off (its process gone) or
its WiFi down, back later; and the cloud restarted between the payment and the meter's return.
The credit arrives once, and nothing is lost."""
import pytest

from mita_procs import StackError, wait_until

WAIT_S = 30
HOUR_MS = 3600 * 1000


def wait_paid(cloud, checkout_id):
    return wait_until(lambda: cloud.stk_status(checkout_id)["status"] == "success", WAIT_S,
                      "STK request %s to succeed at the cloud" % checkout_id)


def wait_offline(cloud, meter_no):
    return wait_until(lambda: cloud.meter(meter_no)["status"].get("state") == "offline",
                      WAIT_S, "the cloud to see meter %s offline" % meter_no)


def wait_credited(meter, cents, what):
    return meter.wait(lambda s: s.get("credited_cents") == cents and s.get("relay_closed"),
                      WAIT_S, what)


def switch_off(meter):
    """A power cut (no goodbye: the broker's last will tells the cloud); returns a function
    that switches the meter on again an hour later on its own clock."""
    epoch_ms = meter.state["epoch_ms"]
    meter.stop(kill=True)
    return lambda: meter.start(epoch_ms=epoch_ms + HOUR_MS)


def test_meter_off_during_the_payment_is_credited_once_when_back_an_hour_later(e2e):
    meter = e2e.meter()
    switched_off_at = meter.state["epoch_ms"]
    come_back = switch_off(meter)
    wait_offline(e2e.cloud, meter.meter_no)
    push = e2e.cloud.stk_push(meter.meter_no, 50)
    wait_paid(e2e.cloud, push["checkout_request_id"])
    come_back()
    state = wait_credited(meter, 5000, "meter %s back, credited once" % meter.meter_no)
    assert state["epoch_ms"] - switched_off_at >= HOUR_MS
    # A barrier payment: a second delivery of the first would have come before it.
    e2e.cloud.stk_push(meter.meter_no, 10)
    wait_credited(meter, 6000, "the next payment and nothing more")
    assert e2e.cloud.meter(meter.meter_no)["recharge_seq"] == 2


def test_a_meter_whose_wifi_is_down_hears_nothing_until_it_is_back(e2e):
    if e2e.kind != "amqtt":
        pytest.skip("the WiFi path is the same on both brokers: one is enough")
    meter = e2e.meter()
    meter.command("wifi off")
    wait_until(lambda: "WARN %s.link: wifi lost" % meter.meter_no in meter.logs, WAIT_S,
               "the meter to notice its WiFi is gone")
    push = e2e.cloud.stk_push(meter.meter_no, 50)
    wait_paid(e2e.cloud, push["checkout_request_id"])
    # The one bounded wait for nothing: over a live link a credit lands within ~0.1 s.
    with pytest.raises(StackError, match="timed out"):
        meter.wait(lambda s: s.get("credited_cents"), 2.0, "no credit while offline")
    meter.command("wifi on")
    wait_credited(meter, 5000, "meter %s back on WiFi, credited once" % meter.meter_no)


def test_cloud_restarted_between_the_payment_and_the_meters_return(e2e):
    meter = e2e.meter()
    come_back = switch_off(meter)
    wait_offline(e2e.cloud, meter.meter_no)
    push = e2e.cloud.stk_push(meter.meter_no, 70)
    wait_paid(e2e.cloud, push["checkout_request_id"])
    e2e.cloud.stop()
    e2e.cloud.start()
    request = e2e.cloud.stk_status(push["checkout_request_id"])
    assert request["status"] == "success"  # the record survived the restart
    come_back()
    wait_credited(meter, 7000, "the payment made before the restart")
    e2e.cloud.stk_push(meter.meter_no, 10)
    wait_credited(meter, 8000, "the next payment and nothing more")
    assert [t["amount_cents"] for t in e2e.cloud.transactions(meter.meter_no)] == [1000, 7000]
