"""Every credited payment gets its meter's next OpenPAYGo token (issue #11, cloud half): STK
callback, settlement by query, C2B, an unmatched payment routed by an operator, and an
operator's hand-issued token. Each token decodes on the firmware's own decoder with the key
provisioning writes, for exactly the amount credited; a duplicate callback mints nothing; the
API shows the token in groups of three; no token reaches a log line."""

import logging

import simulator

simulator.install()  # the firmware's meter package on the path, for its decoder

from cloud.settle import settle_pending  # noqa: E402
from cloud.tokens import token_key  # noqa: E402
from meter.openpaygo import Decoder  # noqa: E402
from meter.token_counts import ADD, TokenCounts  # noqa: E402
from tests.cloud.cloud_harness import (SECRET, c2b_body, config, eventually,  # noqa: F401,E402
                                       harness, pending_push, sandbox_settled, stk_success)


def decoded(meter_no, device_key, digits, counts=None):
    """(kind, cents, count) the meter makes of the token."""
    kind, value, count = Decoder(token_key(meter_no, device_key)).decode(
        digits, counts or TokenCounts())
    return kind, value * 100, count


async def transactions(h, meter_no):
    return (await h.snapshot(meter_no))["transactions"]


async def test_an_stk_payment_gets_a_token_and_its_resent_callback_no_second(harness):
    h = harness
    meter_no, checkout, auth = await pending_push(h, amount=250)
    for receipt in ("QKT0KEN1", "QKT0KEN1", "QKOTHER9"):  # re-sent, then under another receipt
        resp = await h.post_callback(stk_success(checkout, receipt, amount=250.0))
        assert resp.status == 200
    [tx] = await transactions(h, meter_no)
    device_key = await h.store.get_device_key(meter_no)
    assert len(tx["token"]) == 9 and tx["token_count"] == 2
    assert decoded(meter_no, device_key, tx["token"]) == (ADD, 25_000, 2)
    assert (await h.store.get_meter(meter_no))["token_count"] == 2
    [recharge] = (await h.snapshot(meter_no))["recharges"]
    assert recharge["token_count"] == 2  # what the MQTT recharge will carry

    resp = await h.client.get(f"/api/transactions/meter/{meter_no}", headers=auth)
    [shown] = await resp.json()
    assert shown["token"] == " ".join(tx["token"][i:i + 3] for i in (0, 3, 6))
    assert shown["token_count"] == 2


async def test_settle_by_query_c2b_and_routed_unmatched_payments_get_tokens_in_turn(harness):
    h = harness
    meter_no, checkout, _ = await pending_push(h, amount=100)
    await eventually(lambda: sandbox_settled(h, checkout))
    h.payments.clock = lambda: 10**10
    assert await settle_pending(h.payments) == {"credited": 1}
    url = f"/daraja/c2b/confirmation/{SECRET}"
    await h.client.post(url, json=c2b_body("RKC2B0001", meter_no, "1500.00"))  # extended token
    await h.client.post(url, json=c2b_body("RKLOST001", "NO-SUCH-METER", "300.00"))
    resp = await h.client.post("/api/payments/unmatched/RKLOST001/credit",
                               json={"meter_no": meter_no}, headers=h.op())
    assert resp.status == 200, await resp.text()
    txs = sorted(await transactions(h, meter_no), key=lambda t: t["token_count"])
    assert [(t["source"], t["amount_cents"], t["token_count"]) for t in txs] == [
        ("stk_query", 10_000, 2), ("c2b", 150_000, 4), ("c2b", 30_000, 6)]
    device_key = await h.store.get_device_key(meter_no)
    counts = TokenCounts()
    for tx in txs:  # typed in order on the meter, each credits what was paid
        kind, cents, count = decoded(meter_no, device_key, tx["token"], counts)
        assert (kind, cents, count) == (ADD, tx["amount_cents"], tx["token_count"])
        counts.record(count, kind)
    assert len(txs[1]["token"]) == 12


async def test_kes_998_and_999_get_extended_tokens_for_exactly_that_amount(harness):
    # 998 and 999 are the standard's PAYG-disable and counter-sync codes in a 9-digit token;
    # in the 12-digit token a payment of that size gets they are the amount
    h = harness
    _, _, meter_no, device_key = await h.customer_with_meter()
    for receipt, kes in (("RK998", "998.00"), ("RK999", "999.00")):
        await h.client.post(f"/daraja/c2b/confirmation/{SECRET}",
                            json=c2b_body(receipt, meter_no, kes))
    txs = sorted(await transactions(h, meter_no), key=lambda t: t["token_count"])
    counts = TokenCounts()
    for tx, cents in zip(txs, (99_800, 99_900)):
        assert len(tx["token"]) == 12, tx
        kind, got, count = decoded(meter_no, device_key, tx["token"], counts)
        assert (kind, got, count) == (ADD, cents, tx["token_count"])
        counts.record(count, kind)
    assert [r["token_count"] for r in (await h.snapshot(meter_no))["recharges"]] == [2, 4]


async def test_an_operator_issues_a_token_once_with_an_audit_record(harness):
    h = harness
    _, auth, meter_no, device_key = await h.customer_with_meter()
    path = f"/api/meters/{meter_no}/tokens"
    resp = await h.client.post(path, json={"amount_kes": 300, "reason": "outage refund"},
                               headers=h.op())
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["source"] == "operator_token" and body["amount_cents"] == 30_000
    digits = body["token"].replace(" ", "")
    assert len(body["token"].split(" ")) == 3
    assert decoded(meter_no, device_key, digits) == (ADD, 30_000, body["token_count"])
    [recharge] = (await h.snapshot(meter_no))["recharges"]
    assert (recharge["id"], recharge["token_count"]) == (body["mpesa_receipt"], 2)
    [audit] = await h.store.list_audit(meter_no)
    assert audit == {"transaction_id": body["transaction_id"], "meter_no": meter_no,
                     "actor": "operator", "action": "operator_token",
                     "reason": "outage refund", "amount_cents": 30_000,
                     "ts": body["timestamp"]}

    refusals = [(auth, {"amount_kes": 300, "reason": "me"}, 403),
                (h.op(), {"amount_kes": 300}, 400),
                (h.op(), {"amount_kes": 300, "reason": "  "}, 400),
                (h.op(), {"amount_kes": "300", "reason": "x"}, 400),
                (h.op(), {"amount_kes": 0, "reason": "x"}, 400)]
    for headers, json_body, status in refusals:
        resp = await h.client.post(path, json=json_body, headers=headers)
        assert resp.status == status, (json_body, await resp.text())
        assert "error" in await resp.json()
    resp = await h.client.post("/api/meters/NO-SUCH/tokens",
                               json={"amount_kes": 300, "reason": "x"}, headers=h.op())
    assert resp.status == 404
    assert len(await transactions(h, meter_no)) == 1  # nothing refused was credited
    assert len(await h.store.list_audit(meter_no)) == 1


async def test_a_retried_operator_request_is_one_credit(harness):
    h = harness
    _, _, meter_no, _ = await h.customer_with_meter()
    _, _, other_meter, _ = await h.customer_with_meter("MTR-0002")
    ask = {"amount_kes": 200, "reason": "refund of QK123", "request_id": "refund-QK123"}
    path = f"/api/meters/{meter_no}/tokens"
    first = await h.client.post(path, json=ask, headers=h.op())
    again = await h.client.post(path, json=ask, headers=h.op())
    assert (first.status, again.status) == (201, 200)
    assert (await first.json())["token"] == (await again.json())["token"]
    assert len(await transactions(h, meter_no)) == 1
    assert len(await h.store.list_audit(meter_no)) == 1
    # the same request_id for something else is refused, not credited
    for other in (dict(ask, amount_kes=300), dict(ask)):
        target = other_meter if other == ask else meter_no
        resp = await h.client.post(f"/api/meters/{target}/tokens", json=other, headers=h.op())
        assert resp.status == 409, await resp.text()
    resp = await h.client.post(path, json=dict(ask, request_id="no spaces"), headers=h.op())
    assert resp.status == 400
    assert len(await transactions(h, meter_no)) == 1
    assert await transactions(h, other_meter) == []


async def test_no_token_reaches_a_log_line(harness, caplog):
    h = harness
    caplog.set_level(logging.DEBUG)
    meter_no, checkout, _ = await pending_push(h, amount=100)
    await h.post_callback(stk_success(checkout, "QKLOG0001"))
    await h.client.post(f"/api/meters/{meter_no}/tokens",
                        json={"amount_kes": 50, "reason": "goodwill"}, headers=h.op())
    tokens = [t["token"] for t in await transactions(h, meter_no)]
    assert len(tokens) == 2 and all(tokens)
    logged = "\n".join(r.getMessage() + repr(vars(r)) for r in caplog.records)
    assert "payment credited" in logged and "operator token issued" in logged
    for digits in tokens:
        assert digits not in logged and digits[:3] + " " + digits[3:6] not in logged


async def test_tokens_made_ahead_of_the_write_are_the_ones_it_would_mint(harness):
    # A long-paid meter's token is made in the minter's process pool before the write
    # (cloud/token_mint.py); the write takes it because the count is still the one it was for.
    h = harness
    h.payments.minter.ahead_from = 0  # every meter, not only those past count 100
    _, _, meter_no, device_key = await h.customer_with_meter()
    url = f"/daraja/c2b/confirmation/{SECRET}"
    paid = (("RKAHEAD01", "200.00"), ("RKAHEAD02", "1500.00"), ("RKAHEAD03", "300.00"))
    for receipt, amount in paid:
        resp = await h.client.post(url, json=c2b_body(receipt, meter_no, amount))
        assert resp.status == 200
    # the first credit tells the minter the meter's count; the next two are made ahead
    assert h.payments.counters["tokens_ahead"] == 2
    assert h.payments.counters["tokens_ahead_stale"] == 0
    counts = TokenCounts()
    for tx in sorted(await transactions(h, meter_no), key=lambda t: t["token_count"]):
        kind, cents, count = decoded(meter_no, device_key, tx["token"], counts)
        assert (kind, cents, count) == (ADD, tx["amount_cents"], tx["token_count"])
        counts.record(count, kind)
    assert count == 6  # each payment's token carries the meter's next count


async def test_a_token_made_for_a_count_another_credit_took_is_minted_again(harness):
    h = harness
    minter = h.payments.minter
    minter.ahead_from = 0
    user_id, _, meter_no, device_key = await h.customer_with_meter()
    minter.remember(meter_no, 1)  # what a new meter's count is
    stale = await minter.mint_for(h.store, meter_no, 50_000)  # made for count 1 -> 2

    def payment(receipt, cents):
        return {"receipt": receipt, "meter_no": meter_no, "user_id": user_id,
                "amount_cents": cents, "phone_number": "254700000001",
                "transaction_date": "20261204120000", "source": "c2b", "ts": 1}
    meanwhile = await minter.mint_for(h.store, meter_no, 10_000)
    assert (await h.store.record_payment(payment("RKFIRST01", 10_000), mint=meanwhile))[0]
    created, tx, recharge = await h.store.record_payment(payment("RKLATER01", 50_000),
                                                         mint=stale)
    assert created and tx["token_count"] == recharge["token_count"] == 4
    assert minter.counters["tokens_ahead_stale"] == 1
    counts = TokenCounts()
    counts.record(2, ADD)  # the first payment's token typed before it
    assert decoded(meter_no, device_key, tx["token"], counts) == (ADD, 50_000, 4)
