"""What a probe found in the money paths (issue #14 part 7): a receipt reused by a second STK
request, C2B confirmations beyond the validation limits, hashed MSISDNs cut short."""

from tests.cloud.cloud_harness import (SECRET, c2b_body, config, harness,  # noqa: F401
                                       stk_success)

HASHED_MSISDN = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


async def _two_pushes(h):
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
    first = await (await h.stk_push(auth, meter_no, 100)).json()
    second = await (await h.stk_push(auth, meter_no, 200)).json()
    return meter_no, first["checkout_request_id"], second["checkout_request_id"]


async def test_a_receipt_reused_by_another_request_neither_credits_nor_blocks_it(harness):
    h = harness
    meter_no, first, second = await _two_pushes(h)
    assert (await h.post_callback(stk_success(first, "RCPT0001", 100))).status == 200
    # the same receipt again, now for the second request: not its money
    assert await h.payments.apply_stk_result(_parsed(stk_success(second, "RCPT0001", 200))) \
        == "receipt_reused"
    assert (await h.store.get_stk_request(second))["status"] == "pending"
    assert h.payments.counters["receipt_reused"] == 1
    # its genuine callback, with its own receipt, is credited and not taken for a duplicate
    assert await h.payments.apply_stk_result(_parsed(stk_success(second, "RCPT0002", 200))) \
        == "credited"
    assert (await h.store.get_stk_request(second))["status"] == "success"
    assert [r["amount_cents"] for r in await h.store.list_recharges(meter_no)] == [10_000,
                                                                                    20_000]


def _parsed(body):
    from cloud.callbacks import parse_stk_callback
    return parse_stk_callback(body)


async def _confirm(h, body):
    resp = await h.client.post(f"/daraja/c2b/confirmation/{SECRET}", json=body)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_confirmation_beyond_the_limits_is_kept_unmatched_not_credited(harness):
    h = harness
    _, _, meter_no, _ = await h.customer_with_meter()
    for trans_id, amount in (("HUGE0001", "10000000000"), ("CENT0001", "0.01"),
                             ("OVER0001", "250000.01"), ("FRAC0001", "100.50")):
        assert (await _confirm(h, c2b_body(trans_id, meter_no, amount)))["ResultCode"] == 0
        kept = await h.store.get_unmatched_payment(trans_id)
        assert kept is not None and "amount" in kept["reason"], trans_id
        assert await h.store.get_transaction_by_receipt(trans_id) is None
    assert await h.store.list_recharges(meter_no) == []
    assert h.payments.counters["c2b_over_limit"] == 4
    # within the limits (70,000 KES here, and whole KES as validation asks) it is credited
    await _confirm(h, c2b_body("GOOD0001", meter_no, "70000.00"))
    assert (await h.store.get_transaction_by_receipt("GOOD0001"))["amount_cents"] == 7_000_000


async def test_a_hashed_msisdn_is_kept_whole(harness):
    h = harness
    _, _, meter_no, _ = await h.customer_with_meter()
    unmatched = dict(c2b_body("HASH0001", "NO-SUCH-METER"), MSISDN=HASHED_MSISDN)
    credited = dict(c2b_body("HASH0002", meter_no), MSISDN=HASHED_MSISDN)
    await _confirm(h, unmatched)
    await _confirm(h, credited)
    assert (await h.store.get_unmatched_payment("HASH0001"))["phone_number"] == HASHED_MSISDN
    tx = await h.store.get_transaction_by_receipt("HASH0002")
    assert tx["phone_number"] == HASHED_MSISDN


async def test_an_over_limit_payment_cannot_be_routed_to_a_meter_by_hand(harness):
    h = harness
    _, _, meter_no, _ = await h.customer_with_meter()
    await _confirm(h, c2b_body("HUGE0002", meter_no, "10000000000"))
    resp = await h.client.post("/api/payments/unmatched/HUGE0002/credit", headers=h.op(),
                               json={"meter_no": meter_no})
    assert resp.status == 400 and "refund" in (await resp.json())["message"]
    assert await h.store.list_recharges(meter_no) == []
