"""Daraja notifications: the parsers (fuzzed), and exactly-once credit through duplicate,
reordered, late and failed STK callbacks, C2B validation/confirmation and settlement by query."""

import asyncio
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from cloud.callbacks import (InvalidMeterNumber, ParseError, normalise_meter_no, parse_c2b,
                             parse_stk_callback)
from tests.cloud.cloud_harness import (SECRET, c2b_body, config, eventually,  # noqa: F401
                                       harness, pending_push, sandbox_settled, stk_failure,
                                       stk_success)

import pytest

# -- parsers ------------------------------------------------------------------------------

def _containers(children):  # not a lambda: see tests/cloud_link/test_link_payloads.py
    return st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children,
                                                            max_size=4)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    _containers, max_leaves=20)


def _callback_like(draw_value):
    """Bodies shaped almost like a real callback, with any field replaced by any value."""
    return st.fixed_dictionaries({"Body": st.fixed_dictionaries({"stkCallback": st.fixed_dictionaries({
        "CheckoutRequestID": draw_value, "ResultCode": st.sampled_from([0, 1032, "0", "x"]) | draw_value,
        "CallbackMetadata": st.fixed_dictionaries({"Item": st.lists(st.fixed_dictionaries({
            "Name": st.sampled_from(["Amount", "MpesaReceiptNumber", "PhoneNumber", "Balance"]),
            "Value": draw_value}), max_size=5)}) | draw_value})})})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, _callback_like(json_values)))
def test_stk_parser_returns_a_result_or_parse_error_for_any_json(value):
    try:
        result = parse_stk_callback(value)
    except ParseError:
        return
    assert isinstance(result.checkout_request_id, str) and result.checkout_request_id
    if result.paid:
        assert isinstance(result.amount_cents, int) and result.amount_cents > 0
        assert isinstance(result.receipt, str) and result.receipt


c2b_fields = st.fixed_dictionaries({
    "TransID": json_values, "TransAmount": json_values | st.sampled_from(["10.00", "1", "0.001"]),
    "BillRefNumber": json_values | st.text(max_size=30)})


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, c2b_fields))
def test_c2b_parser_returns_a_payment_or_parse_error_for_any_json(value):
    try:
        payment = parse_c2b(value)
    except ParseError:
        return
    assert isinstance(payment.amount_cents, int) and payment.amount_cents > 0
    assert payment.meter_no is None or payment.meter_no.isalnum()


def test_stk_success_parses_numbers_as_daraja_sends_them_in_any_order():
    body = stk_success("ws_CO_1", "NLJ7RT61SV", amount=1.00)
    body["Body"]["stkCallback"]["CallbackMetadata"]["Item"].reverse()
    result = parse_stk_callback(json.loads(json.dumps(body)))
    assert (result.amount_cents, result.receipt, result.phone_number) == (100, "NLJ7RT61SV",
                                                                          "254712345678")
    assert result.transaction_date == "20191219102115"


def test_stk_failure_needs_no_metadata_and_string_codes_are_numbers():
    result = parse_stk_callback(stk_failure("ws_CO_2", code="1037"))
    assert not result.paid and result.result_code == 1037 and result.amount_cents is None


@pytest.mark.parametrize("body", [
    {"Body": {}}, [], "x", {"Body": {"stkCallback": {"ResultCode": 0}}},
    stk_success("", "R1"), stk_success("ws", "R1", amount=1.001), stk_success("ws", "R1", amount=0),
    stk_success("ws", "R1", amount=-5), stk_success("ws", "R1", amount=True),
    stk_success("ws", None), {"Body": {"stkCallback": {"CheckoutRequestID": "ws", "ResultCode": 0}}},
    {"Body": {"stkCallback": {"CheckoutRequestID": "ws", "ResultCode": True}}},
])
def test_stk_parser_refuses_broken_callbacks(body):
    with pytest.raises(ParseError):
        parse_stk_callback(body)


def test_c2b_amount_strings_become_cents_and_fractions_of_cents_are_refused():
    assert parse_c2b(c2b_body("T1", "m-1", "10.50")).amount_cents == 1050
    for bad in ("ten", "", "1e999999999", "0.001", "-1", "NaN", None):
        with pytest.raises(ParseError):
            parse_c2b(c2b_body("T1", "m-1", bad))


@pytest.mark.parametrize("typed, canonical", [
    ("meter 1234-5678", "METER12345678"), ("METER_12345678", "METER12345678"),
    (" mtr.0001 ", "MTR0001"), ("abc", "ABC")])
def test_meter_numbers_are_normalised_the_same_way_everywhere(typed, canonical):
    assert normalise_meter_no(typed) == canonical


@pytest.mark.parametrize("bad", ["", "  --  ", "x" * 21, "mètre1", "M1;DROP", 12345678, None])
def test_meter_numbers_that_cannot_name_a_meter_are_refused(bad):
    with pytest.raises(InvalidMeterNumber):
        normalise_meter_no(bad)


# -- STK callbacks end to end -------------------------------------------------------------

async def test_success_callback_credits_once_even_when_delivered_three_times(harness):
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    kicked = []
    h.payments.on_recharge = kicked.append
    for _ in range(3):
        resp = await h.post_callback(stk_success(checkout, "QK1AAA"))
        assert resp.status == 200
        assert await resp.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    snap = await h.snapshot(meter_no)
    assert [t["mpesa_receipt"] for t in snap["transactions"]] == ["QK1AAA"]
    assert [(r["amount_cents"], r["status"]) for r in snap["recharges"]] == [(10000, "pending")]
    stk = await h.store.get_stk_request(checkout)
    assert stk["status"] == "success"
    assert kicked == [meter_no]  # the link is told once


async def test_meter_comes_from_the_stored_request_not_the_phone(harness):
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    other_user, _ = await h.create_customer("Neighbour")
    await h.register_meter(other_user, "MTR-0002")
    await h.post_callback(stk_success(checkout, "QK2BBB", phone=254799999999))
    assert len((await h.snapshot(meter_no))["transactions"]) == 1
    assert (await h.snapshot("MTR0002"))["transactions"] == []


@pytest.mark.parametrize("code", [1, 1032, 1037, 2001, 1019])
async def test_failed_payment_is_recorded_on_the_request_without_credit(harness, code):
    h = harness
    meter_no, checkout, auth = await pending_push(h)
    resp = await h.post_callback(stk_failure(checkout, code=code))
    assert (await resp.json())["ResultCode"] == 0
    stk = await (await h.client.get(f"/api/payments/stk/{checkout}", headers=auth)).json()
    assert stk["status"] == "failed" and stk["result_code"] == code and stk["reason"]
    snap = await h.snapshot(meter_no)
    assert snap["transactions"] == [] and snap["recharges"] == []


async def test_callback_before_the_push_reply_is_stored_is_claimed_by_the_push(harness):
    h = harness
    user_id, auth, meter_no, key = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none", callback_delay_s=0)
    real_push = h.daraja.stk_push

    async def push_then_callback_races_ahead(*args, **kw):
        reply = await real_push(*args, **kw)
        # the customer has paid (so an STK query confirms it), and the callback races ahead
        await eventually(lambda: sandbox_settled(h, reply["CheckoutRequestID"]))
        early = await h.post_callback(stk_success(reply["CheckoutRequestID"], "QKEARLY"))
        assert early.status == 200
        assert (await h.snapshot(meter_no))["transactions"] == []  # nothing to credit yet
        return reply

    h.daraja.stk_push = push_then_callback_races_ahead
    resp = await h.stk_push(auth, meter_no)
    body = await resp.json()
    assert body["status"] == "success"
    assert [t["mpesa_receipt"] for t in (await h.snapshot(meter_no))["transactions"]] == ["QKEARLY"]
    assert h.payments.counters["orphans_claimed"] == 1


async def test_second_payments_callback_first_credits_each_request_once(harness):
    h = harness
    meter_no, first, auth = await pending_push(h, amount=100)
    second = (await (await h.stk_push(auth, meter_no, 200)).json())["checkout_request_id"]
    await h.post_callback(stk_success(second, "QKSECOND", amount=200))
    await h.post_callback(stk_success(first, "QKFIRST", amount=100))
    await h.post_callback(stk_success(second, "QKSECOND", amount=200))
    txs = (await h.snapshot(meter_no))["transactions"]
    assert sorted((t["mpesa_receipt"], t["amount_cents"]) for t in txs) == [
        ("QKFIRST", 10000), ("QKSECOND", 20000)]


async def test_concurrent_duplicate_callbacks_credit_once(harness):
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    replies = await asyncio.gather(*(h.post_callback(stk_success(checkout, f"QKC{i % 2}"))
                                     for i in range(10)))
    assert all(r.status == 200 for r in replies)
    snap = await h.snapshot(meter_no)
    assert len(snap["transactions"]) == 1 and len(snap["recharges"]) == 1
    assert h.payments._locks == {}


async def test_unknown_checkout_id_credits_nothing_and_is_counted(harness):
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    resp = await h.post_callback(stk_success("ws_CO_FORGED", "QKFORGED"))
    assert resp.status == 200
    assert (await h.snapshot(meter_no))["transactions"] == []
    assert h.payments.counters["unknown_callbacks"] == 1
    assert await h.store.get_transaction_by_receipt("QKFORGED") is None


async def test_amount_mismatch_never_credits_more_than_requested_nor_paid(harness):
    h = harness
    meter_no, checkout, auth = await pending_push(h, amount=100)
    await h.post_callback(stk_success(checkout, "QKBIG", amount=5000))
    second = (await (await h.stk_push(auth, meter_no, 300)).json())["checkout_request_id"]
    await h.post_callback(stk_success(second, "QKSMALL", amount=50))
    amounts = {t["mpesa_receipt"]: t["amount_cents"]
               for t in (await h.snapshot(meter_no))["transactions"]}
    assert amounts == {"QKBIG": 10000, "QKSMALL": 5000}
    assert h.payments.counters["amount_mismatch"] == 2


async def test_wrong_or_missing_secret_is_refused_and_changes_nothing(harness):
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    for path in ("/daraja/callback", "/daraja/callback/wrong-secret-xxxxxxxx",
                 "/daraja/callback?secret=nope"):
        resp = await h.post_callback(stk_success(checkout, "QKX"), path=path)
        assert resp.status == 403
        assert (await resp.json())["error"] == "forbidden"
    assert (await h.snapshot(meter_no))["transactions"] == []
    resp = await h.post_callback(stk_success(checkout, "QKX"), path=f"/daraja/callback?secret={SECRET}")
    assert resp.status == 200
    assert len((await h.snapshot(meter_no))["transactions"]) == 1


async def test_allow_list_refuses_callers_outside_it(aiohttp_client, tmp_path):
    import ipaddress
    from cloud.app import create_app
    from tests.cloud.cloud_harness import Harness, make_config
    cfg = make_config(tmp_path, callback_allowlist=(ipaddress.ip_network("196.201.212.0/24"),))
    h = Harness(await aiohttp_client(create_app(cfg, settle=False)))
    resp = await h.post_callback(stk_success("ws_CO_1", "QK1"))
    assert resp.status == 403
    assert h.payments.counters["unknown_callbacks"] == 0  # refused before it was looked at


async def test_end_to_end_the_stand_in_calls_back_and_the_meter_is_credited(harness):
    h = harness
    user_id, auth, meter_no, key = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="success", callback_delay_s=0, deliver_times=2)
    resp = await h.stk_push(auth, meter_no, 250)
    checkout = (await resp.json())["checkout_request_id"]

    async def settled():
        stk = await h.store.get_stk_request(checkout)
        return stk["status"] == "success" and h.payments.counters["duplicates"] >= 1
    assert await eventually(settled)
    txs = (await h.snapshot(meter_no))["transactions"]
    assert len(txs) == 1 and txs[0]["amount_cents"] == 25000 and txs[0]["source"] == "stk"


async def test_success_callback_after_a_recorded_failure_is_only_credited_if_query_confirms(harness):
    h = harness
    meter_no, checkout, _ = await pending_push(h)   # outcome "none": the gateway says paid
    await h.post_callback(stk_failure(checkout, 1037))
    await eventually(lambda: sandbox_settled(h, checkout))
    await h.post_callback(stk_success(checkout, "QKAFTER"))
    assert len((await h.snapshot(meter_no))["transactions"]) == 1
    # ... and one the gateway knows as failed is not
    user2, auth2 = await h.create_customer("B")
    meter2, _ = await h.register_meter(user2, "MTR-0009")
    await h.sandbox_settings(default_outcome="cancelled", callback_delay_s=0)
    h.daraja.callback_url = "http://127.0.0.1:9/nowhere"
    checkout2 = (await (await h.stk_push(auth2, meter2)).json())["checkout_request_id"]
    await eventually(lambda: sandbox_settled(h, checkout2))
    await h.post_callback(stk_failure(checkout2, 1032))
    await h.post_callback(stk_success(checkout2, "QKFORGED2"))
    assert (await h.snapshot(meter2))["transactions"] == []
    assert h.payments.counters["unconfirmed_success"] == 1


# -- C2B ----------------------------------------------------------------------------------

async def test_c2b_validation_accepts_known_meters_and_rejects_unknown_or_bad_amounts(harness):
    h = harness
    await h.customer_with_meter("MTR-0001")
    url = f"/daraja/c2b/validation/{SECRET}"

    async def verdict(bill_ref, amount):
        resp = await h.client.post(url, json=c2b_body("T1", bill_ref, amount))
        assert resp.status == 200
        return (await resp.json())["ResultCode"]
    assert await verdict("mtr 0001", "100.00") == "0"
    assert await verdict("MTR-9999", "100.00") == "C2B00012"
    assert await verdict("!!", "100.00") == "C2B00012"
    assert await verdict("mtr0001", "70001.00") == "C2B00013"
    assert await verdict("mtr0001", "10.50") == "C2B00013"


async def test_c2b_confirmation_credits_once_per_trans_id_with_a_typed_account_number(harness):
    h = harness
    _, _, meter_no, _ = await h.customer_with_meter("MTR-0001")
    url = f"/daraja/c2b/confirmation/{SECRET}"
    for bill_ref in ("mtr 0001", "MTR-0001", "mtr0001"):  # the same TransID re-sent
        resp = await h.client.post(url, json=c2b_body("RKTQDM7W6S", bill_ref, "150.00"))
        assert await resp.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    txs = (await h.snapshot(meter_no))["transactions"]
    assert [(t["mpesa_receipt"], t["amount_cents"], t["source"]) for t in txs] == [
        ("RKTQDM7W6S", 15000, "c2b")]


async def test_c2b_confirmation_for_an_unknown_account_is_acknowledged_and_counted(harness):
    h = harness
    resp = await h.client.post(f"/daraja/c2b/confirmation/{SECRET}",
                               json=c2b_body("RKT0000001", "NOSUCH", "100.00"))
    assert resp.status == 200
    assert h.payments.counters["c2b_unmatched"] == 1
    assert await h.store.get_transaction_by_receipt("RKT0000001") is None


async def test_c2b_simulate_through_the_stand_in_reaches_validation_and_confirmation(harness):
    h = harness
    _, _, meter_no, _ = await h.customer_with_meter("MTR-0001")
    await h.sandbox_settings(callback_delay_s=0, external_validation=True)
    await h.daraja.register_c2b_urls(
        str(h.client.make_url(f"/daraja/c2b/confirmation/{SECRET}")),
        str(h.client.make_url(f"/daraja/c2b/validation/{SECRET}")))
    await h.daraja.simulate_c2b(40, "0712345678", "mtr-0001")
    await h.daraja.simulate_c2b(40, "0712345678", "nosuchmeter")

    async def credited():
        return (await h.snapshot(meter_no))["transactions"]
    txs = await eventually(credited)
    assert [t["amount_cents"] for t in txs] == [4000]
    assert await eventually(lambda: _c2b_done(h, 2))
    assert h.sandbox.c2b[1]["validation"] == "rejected:C2B00012"


async def _c2b_done(h, n):
    return len(h.sandbox.c2b) >= n and h.sandbox.c2b[-1]["validation"] is not None


# -- the same walk on every store backend (SQLite, and Firebase through the local RTDB) ----

async def test_payment_walk_is_exactly_once_on_every_store(aiohttp_client, tmp_path, store):
    from cloud.app import create_app
    from tests.cloud.cloud_harness import Harness, make_config
    h = Harness(await aiohttp_client(create_app(make_config(tmp_path), store=store,
                                                settle=False)))
    meter_no, checkout, auth = await pending_push(h)
    await h.post_callback(stk_failure("ws_CO_UNKNOWN", 1032))
    for _ in range(2):
        assert (await h.post_callback(stk_success(checkout, "QKWALK1"))).status == 200
    h.payments._credited.clear()
    await h.post_callback(stk_success(checkout, "QKWALK2"))  # same request, other receipt
    for _ in range(2):
        await h.client.post(f"/daraja/c2b/confirmation/{SECRET}",
                            json=c2b_body("RKWALK3", "mtr 0001", "70.00"))
    txs = await store.list_transactions_for_meter(meter_no, 10)
    assert sorted((t["mpesa_receipt"], t["amount_cents"]) for t in txs) == [
        ("QKWALK1", 10000), ("RKWALK3", 7000)]
    assert [r["seq"] for r in await store.list_recharges(meter_no)] == [1, 2]
    body = await (await h.client.get(f"/api/transactions/meter/{meter_no}", headers=auth)).json()
    assert len(body) == 2


async def test_a_callback_is_not_acknowledged_until_recorded_and_the_resend_credits(harness,
                                                                                    monkeypatch):
    from cloud.store.base import StoreError
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    real = h.store.record_payment

    async def disk_full(payment, mint=None):
        raise StoreError("sqlite: database or disk is full")
    monkeypatch.setattr(h.store, "record_payment", disk_full)
    resp = await h.post_callback(stk_success(checkout, "QKRETRY"))
    assert resp.status == 503 and (await resp.json())["error"] == "store_unavailable"
    monkeypatch.setattr(h.store, "record_payment", real)
    resp = await h.post_callback(stk_success(checkout, "QKRETRY"))
    assert await resp.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert [t["mpesa_receipt"] for t in (await h.snapshot(meter_no))["transactions"]] == ["QKRETRY"]
