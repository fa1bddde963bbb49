"""Review fixes (#4), money: each test names a way a payment could be lost, doubled or
mis-routed and fails if it reopens (confirmation by query, unmatched payments, the push guard,
amounts, C2B registration)."""

import pytest

from cloud.settle import settle_pending

from tests.cloud.cloud_harness import config, harness  # noqa: F401  (fixtures)


async def test_a_store_outage_tells_the_caller_nothing_about_the_backend(harness, monkeypatch,
                                                                         caplog):
    from cloud.store.base import StoreError
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()

    async def locked(*args):
        raise StoreError("sqlite: database is locked (/srv/mita/mita.sqlite3)")
    monkeypatch.setattr(h.store, "get_meter", locked)
    resp = await h.client.get(f"/api/meters/{meter_no}", headers=auth)
    assert resp.status == 503
    body = await resp.json()
    assert body["error"] == "store_unavailable"
    assert "sqlite" not in body["message"] and "/srv" not in body["message"]
    # the operator still sees what broke
    assert any("database is locked" in str(getattr(r, "error", "")) for r in caplog.records)


async def test_a_timed_out_push_is_logged_for_reconciliation(harness, caplog):
    from cloud.daraja import DarajaTimeout
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()

    async def slow(*args):
        raise DarajaTimeout("no reply from Daraja within 15s")
    h.payments.daraja.stk_push = slow
    resp = await h.stk_push(auth, meter_no, amount=250)
    assert resp.status == 504
    logged = [r for r in caplog.records if r.msg == "stk push timed out; outcome unknown"]
    assert logged and logged[0].amount_cents == 25000 and logged[0].meter_no == meter_no


class _Query:
    """A Daraja stand-in whose STK query raises or answers as told."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.calls = 0

    async def stk_query(self, checkout):
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


async def test_a_success_after_a_failure_is_not_acknowledged_while_mpesa_cannot_confirm(harness):
    from cloud.daraja import DarajaAuthError, DarajaTimeout
    from tests.cloud.cloud_harness import pending_push, stk_failure, stk_success
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    await h.post_callback(stk_failure(checkout, 1037))
    real = h.payments.daraja
    for trouble in (DarajaTimeout("no reply"), DarajaAuthError("OAuth refused")):
        h.payments.daraja = _Query(trouble)
        resp = await h.post_callback(stk_success(checkout, "QKLATE1"))
        # not acknowledged: Daraja re-sends it, where a 200 would drop a real payment
        assert resp.status == 503 and (await resp.json())["error"] == "gateway_unavailable"
        assert (await h.snapshot(meter_no))["transactions"] == []
    h.payments.daraja = _Query({"ResultCode": "0", "ResultDesc": "ok"})
    resp = await h.post_callback(stk_success(checkout, "QKLATE1"))
    assert resp.status == 200
    assert [t["mpesa_receipt"] for t in (await h.snapshot(meter_no))["transactions"]] == \
        ["QKLATE1"]
    h.payments.daraja = real


async def test_a_success_mpesa_denies_is_acknowledged_uncredited_and_logged(harness, caplog):
    from cloud.daraja import DarajaRejected
    from tests.cloud.cloud_harness import pending_push, stk_failure, stk_success
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    await h.post_callback(stk_failure(checkout, 1032))
    for answer in ({"ResultCode": "1032", "ResultDesc": "cancelled"},
                   DarajaRejected("Invalid CheckoutRequestID", "400.002.02", 400)):
        h.payments.daraja = _Query(answer)
        resp = await h.post_callback(stk_success(checkout, "QKFORGED"))
        assert resp.status == 200
    assert (await h.snapshot(meter_no))["transactions"] == []
    logged = [r for r in caplog.records if r.levelname == "ERROR" and r.name == "mita.payments"]
    assert len(logged) == 2 and logged[0].receipt == "QKFORGED"


async def test_settle_never_gives_up_because_of_its_own_credentials_or_network(harness):
    from cloud.daraja import DarajaAuthError, DarajaError, DarajaRejected
    from tests.cloud.cloud_harness import pending_push
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    created = (await h.store.get_stk_request(checkout))["created_at"]
    h.payments.clock = lambda: (created + 3_600_000) / 1000  # far past the give-up age
    for trouble in (DarajaAuthError("OAuth refused"), DarajaError("cannot reach Daraja")):
        h.payments.daraja = _Query(trouble)
        assert await settle_pending(h.payments) == {"query_error": 1}
        assert (await h.store.get_stk_request(checkout))["status"] == "pending"
    # M-Pesa itself refusing the query about this request is an answer: give up then
    h.payments.daraja = _Query(DarajaRejected("Invalid CheckoutRequestID", "400.002.02", 400))
    assert await settle_pending(h.payments) == {"gave_up": 1}
    assert (await h.store.get_stk_request(checkout))["status"] == "failed"


# -- money M-Pesa took that names no meter is kept, shown to operators and routed once ------


async def test_an_unknown_paybill_account_is_kept_and_an_operator_routes_it_once(harness):
    from tests.cloud.cloud_harness import SECRET, c2b_body
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter("MTR-0001")
    url = f"/daraja/c2b/confirmation/{SECRET}"
    for _ in range(2):  # re-sent by M-Pesa
        resp = await h.client.post(url, json=c2b_body("RKTTYPO01", "MTR-0O01", "150.00"))
        assert resp.status == 200
    resp = await h.client.get("/api/payments/unmatched", headers=auth)
    assert resp.status == 403  # customers never see other people's payments
    listed = await (await h.client.get("/api/payments/unmatched", headers=h.op())).json()
    assert [(r["receipt"], r["amount_cents"], r["bill_ref"]) for r in listed] == \
        [("RKTTYPO01", 15000, "MTR-0O01")]
    credit = "/api/payments/unmatched/RKTTYPO01/credit"
    resp = await h.client.post(credit, json={"meter_no": "mtr 0001"}, headers=auth)
    assert resp.status == 403
    resp = await h.client.post(credit, json={"meter_no": "mtr 0001"}, headers=h.op())
    assert await resp.json() == {"receipt": "RKTTYPO01", "outcome": "credited"}
    resp = await h.client.post(credit, json={"meter_no": "mtr 0001"}, headers=h.op())
    assert (await resp.json())["outcome"] == "duplicate"
    snap = await h.snapshot(meter_no)
    assert [(t["mpesa_receipt"], t["amount_cents"]) for t in snap["transactions"]] == \
        [("RKTTYPO01", 15000)]
    assert len(snap["recharges"]) == 1
    assert await (await h.client.get("/api/payments/unmatched", headers=h.op())).json() == []
    resp = await h.client.post("/api/payments/unmatched/NOPE/credit",
                               json={"meter_no": meter_no}, headers=h.op())
    assert resp.status == 404


async def test_an_unmatched_confirmation_is_not_acknowledged_until_kept(harness, monkeypatch):
    from cloud.store.base import StoreError
    from tests.cloud.cloud_harness import SECRET, c2b_body
    h = harness

    async def disk_full(record):
        raise StoreError("sqlite: database or disk is full")
    monkeypatch.setattr(h.store, "record_unmatched_payment", disk_full)
    resp = await h.client.post(f"/daraja/c2b/confirmation/{SECRET}",
                               json=c2b_body("RKTLOST01", "NOSUCH", "100.00"))
    assert resp.status == 503


async def test_a_paid_callback_for_a_push_never_stored_is_kept_and_credited_only_if_confirmed(
        harness):
    from tests.cloud.cloud_harness import stk_success
    h = harness
    _, _, meter_no, _ = await h.customer_with_meter()
    # the push's reply timed out (or we crashed before storing it); the customer paid anyway
    for _ in range(2):
        resp = await h.post_callback(stk_success("ws_CO_LOST", "QKLOST1", amount=75))
        assert resp.status == 200
    listed = await (await h.client.get("/api/payments/unmatched", headers=h.op())).json()
    assert [(r["receipt"], r["source"], r["checkout_request_id"], r["amount_cents"])
            for r in listed] == [("QKLOST1", "stk", "ws_CO_LOST", 7500)]
    credit = "/api/payments/unmatched/QKLOST1/credit"
    h.payments.daraja = _Query({"ResultCode": "1032", "ResultDesc": "cancelled"})
    resp = await h.client.post(credit, json={"meter_no": meter_no}, headers=h.op())
    assert resp.status == 409 and (await resp.json())["error"] == "not_confirmed"
    assert (await h.snapshot(meter_no))["transactions"] == []
    h.payments.daraja = _Query({"ResultCode": "0", "ResultDesc": "ok"})
    resp = await h.client.post(credit, json={"meter_no": meter_no}, headers=h.op())
    assert (await resp.json())["outcome"] == "credited"
    txs = (await h.snapshot(meter_no))["transactions"]
    assert [(t["mpesa_receipt"], t["checkout_request_id"]) for t in txs] == \
        [("QKLOST1", "ws_CO_LOST")]


async def test_an_orphan_claimed_by_its_push_is_not_left_in_the_unmatched_list(harness):
    from tests.cloud.cloud_harness import eventually, sandbox_settled, stk_success
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none", callback_delay_s=0)
    real_push = h.daraja.stk_push

    async def push_then_early_callback(*args):
        reply = await real_push(*args)
        await eventually(lambda: sandbox_settled(h, reply["CheckoutRequestID"]))  # paid
        # Safaricom's callback overtakes our own store write of the request
        await h.post_callback(stk_success(reply["CheckoutRequestID"], "QKEARLY", amount=100))
        return reply
    h.payments.daraja.stk_push = push_then_early_callback
    assert (await h.stk_push(auth, meter_no)).status == 201
    assert len((await h.snapshot(meter_no))["transactions"]) == 1
    assert len(await h.store.list_unmatched_payments()) == 1  # history is kept ...
    assert await (await h.client.get("/api/payments/unmatched", headers=h.op())).json() == []


@pytest.mark.parametrize("answer", ["cancelled", "pending"])
async def test_a_callback_that_raced_its_push_credits_nothing_unless_a_query_confirms(harness,
                                                                                    answer):
    from cloud.daraja import DarajaPending
    from tests.cloud.cloud_harness import stk_success
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
    real_push = h.daraja.stk_push
    query = (_Query({"ResultCode": "1032", "ResultDesc": "cancelled"}) if answer == "cancelled"
             else _Query(DarajaPending("being processed", "500.001.1001", 500)))

    async def push_then_forged_callback(*args):
        reply = await real_push(*args)
        await h.post_callback(stk_success(reply["CheckoutRequestID"], "QKRACE", amount=100))
        h.payments.daraja = query  # M-Pesa's answer when the push claims the callback
        return reply
    h.payments.daraja.stk_push = push_then_forged_callback
    resp = await h.stk_push(auth, meter_no)
    assert resp.status == 201 and (await resp.json())["status"] == "pending"
    assert query.calls >= 1
    assert (await h.snapshot(meter_no))["transactions"] == []


async def test_an_unmatched_stk_payment_goes_to_the_meter_of_its_stored_request_only(harness):
    from tests.cloud.cloud_harness import pending_push
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    other_user, _ = await h.create_customer("B")
    other, _ = await h.register_meter(other_user, "MTR-0002")
    # as if the callback came before the push was stored and was never claimed
    await h.store.record_unmatched_payment({"receipt": "QKMINE", "source": "stk",
                                            "amount_cents": 10000,
                                            "checkout_request_id": checkout, "ts": 1})
    h.payments.daraja = _Query({"ResultCode": "0", "ResultDesc": "ok"})
    credit = "/api/payments/unmatched/QKMINE/credit"
    resp = await h.client.post(credit, json={"meter_no": other}, headers=h.op())
    assert resp.status == 409
    assert (await h.snapshot(other))["transactions"] == []
    resp = await h.client.post(credit, json={"meter_no": meter_no}, headers=h.op())
    assert (await resp.json())["outcome"] == "credited"
    assert (await h.store.get_stk_request(checkout))["status"] == "success"


async def test_operators_read_the_payment_counters(harness):
    from tests.cloud.cloud_harness import stk_failure
    h = harness
    _, auth = await h.create_customer()
    await h.post_callback(stk_failure("ws_CO_NOBODY"))
    assert (await h.client.get("/api/payments/counters", headers=auth)).status == 403
    body = await (await h.client.get("/api/payments/counters", headers=h.op())).json()
    assert body["unknown_callbacks"] == 1 and body["credited"] == 0


# -- starting pushes: no double prompts, no prompt floods -----------------------------------


async def test_a_double_tap_sends_one_prompt_until_that_one_is_answered(harness):
    import asyncio
    from tests.cloud.cloud_harness import stk_failure
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
    h.payments.push_guard.limits["phone"] = (100, 600)  # one phone on purpose: not that limit
    now = [1_800_000_000.0]
    h.payments.clock = lambda: now[0]
    first, second = await asyncio.gather(h.stk_push(auth, meter_no, 100),
                                         h.stk_push(auth, meter_no, 100))
    assert sorted((first.status, second.status)) == [201, 409]
    winner = first if first.status == 201 else second
    checkout = (await winner.json())["checkout_request_id"]
    again = await h.stk_push(auth, meter_no, 100, phone="+254 712 345 678")  # same phone
    assert again.status == 409 and checkout in (await again.json())["message"]
    assert len(h.sandbox.stk) == 1  # M-Pesa was asked once
    assert (await h.stk_push(auth, meter_no, 150)).status == 201  # another amount is new
    await h.post_callback(stk_failure(checkout, 1032))  # cancelled on the phone: retry is fine
    assert (await h.stk_push(auth, meter_no, 100)).status == 201
    now[0] += 61  # a prompt left unanswered stops blocking after a minute
    assert (await h.stk_push(auth, meter_no, 100)).status == 201


async def test_a_refused_push_does_not_block_the_retry(harness):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    h.sandbox.faults.append({"path": "/mpesa/stkpush/v1/processrequest", "count": 1,
                             "status": 500, "errorCode": "500.003.02",
                             "errorMessage": "System is busy"})
    assert (await h.stk_push(auth, meter_no, 100)).status == 502
    assert (await h.stk_push(auth, meter_no, 100)).status == 201


async def test_a_customer_cannot_flood_phones_with_prompts(harness):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
    h.payments.push_guard.limits["meter"] = (100, 600)  # only the per-customer limit here
    now = [1_800_000_000.0]
    h.payments.clock = lambda: now[0]
    for n in range(5):
        assert (await h.stk_push(auth, meter_no, 10 + n, phone=f"071234560{n}")).status == 201
    resp = await h.stk_push(auth, meter_no, 20, phone="0712345609")
    assert resp.status == 429 and (await resp.json())["error"] == "too_many_requests"
    assert "customer" in (await resp.json())["message"] and resp.headers["Retry-After"] == "60"
    assert len(h.sandbox.stk) == 5
    now[0] += 60
    assert (await h.stk_push(auth, meter_no, 22, phone="0712345609")).status == 201


async def test_register_c2b_gives_daraja_the_secret_urls_without_printing_the_secret(
        aiohttp_server, capsys):
    from cloud.__main__ import register_c2b
    from cloud.config import config_from_mapping
    from standins.daraja import SANDBOX, make_app
    server = await aiohttp_server(make_app({"consumer_key": "ck", "consumer_secret": "cs",
                                            "shortcode": "600999", "passkey": "pk"}))
    secret = "prod-secret-0123456789"
    config = config_from_mapping({
        "DARAJA_BASE_URL": str(server.make_url("")), "DARAJA_CONSUMER_KEY": "ck",
        "DARAJA_CONSUMER_SECRET": "cs", "DARAJA_SHORTCODE": "600999", "DARAJA_PASSKEY": "pk",
        "DARAJA_CALLBACK_URL": f"https://mita.example/daraja/callback/{secret}",
        "MITA_CALLBACK_SECRET": secret})
    await register_c2b(config, "https://mita.example/", "Cancelled")
    registered = server.app[SANDBOX].c2b_urls["600999"]
    assert registered["ConfirmationURL"] == \
        f"https://mita.example/daraja/c2b/confirmation/{secret}"
    assert registered["ValidationURL"] == f"https://mita.example/daraja/c2b/validation/{secret}"
    assert registered["ResponseType"] == "Cancelled"
    out = capsys.readouterr().out
    assert "confirmation/<secret>" in out and secret not in out
    with pytest.raises(ValueError, match="https"):
        await register_c2b(config, "mita.example")
    with pytest.raises(ValueError, match="real gateway"):
        await register_c2b(config_from_mapping({}), "https://mita.example")


def test_register_c2b_on_the_command_line_refuses_the_embedded_stand_in(tmp_path, capsys):
    import logging
    from cloud.__main__ import main
    env_file = tmp_path / ".env"
    env_file.write_text(f"MITA_SQLITE_PATH={tmp_path / 'm.sqlite3'}\n")
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        assert main(["--env-file", str(env_file), "register-c2b", "https://x.example"]) == 1
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
    assert "real gateway" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["1e3", "1_000.00", "+10", "0x10", "\u0661\u0660", "10.",
                                  ".5", "1 000", "NaN", "Infinity", "-10.00", "10,00"])
def test_c2b_amount_strings_must_be_plain_decimals(text):
    from cloud.callbacks import ParseError, amount_to_cents
    with pytest.raises(ParseError):
        amount_to_cents(text)


@pytest.mark.parametrize("value, cents", [("10.00", 1000), (" 10.5 ", 1050), ("0.01", 1),
                                          (1.0, 100), (10, 1000), (1.1, 110), ("250000", 25000000)])
def test_amounts_as_daraja_sends_them_become_exact_cents(value, cents):
    from cloud.callbacks import amount_to_cents
    assert amount_to_cents(value) == cents


async def test_an_unreadable_notification_is_refused_and_logged_with_its_ids(harness, caplog):
    from tests.cloud.cloud_harness import SECRET, c2b_body, stk_success
    h = harness
    resp = await h.client.post(f"/daraja/c2b/confirmation/{SECRET}",
                               json=c2b_body("RKTODD0001", "MTR0001", "1e3"))
    assert resp.status == 400
    resp = await h.post_callback(stk_success("ws_CO_ODD", "QKODD", amount="lots"))
    assert resp.status == 400
    resp = await h.post_callback(b"{not json")
    assert resp.status == 400
    warned = [r for r in caplog.records if r.msg == "unreadable daraja notification"]
    assert [(r.kind, getattr(r, "trans_id", None), getattr(r, "checkout_request_id", None))
            for r in warned] == [("c2b_confirmation", "RKTODD0001", None),
                                 ("stk_callback", None, "ws_CO_ODD"),
                                 ("stk_callback", None, None)]
