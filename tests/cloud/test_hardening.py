"""Review fixes (#4): each test names a hole found in review and fails if it reopens."""

import pytest

from cloud.auth import AuthError, MeterVerifier, signed_headers
from tests.cloud.cloud_harness import config, harness  # noqa: F401  (fixtures)


@pytest.mark.parametrize("signature", ["\u00e9" * 64, "g" * 64, " " * 64, "0" * 63 + "\u0661"])
async def test_a_non_hex_meter_signature_is_a_401_not_a_crash(signature):
    class Keys:
        async def get_device_key(self, meter_no):
            return "k"

    verifier = MeterVerifier(Keys(), clock=lambda: 1_000_000)
    headers = signed_headers("M1", "k", "POST", "/p", b"{}", timestamp=1_000_000)
    headers["X-Mita-Signature"] = signature
    with pytest.raises(AuthError, match="hex"):
        await verifier.verify("M1", "POST", "/p", headers, b"{}")


async def test_a_non_ascii_signature_over_http_is_json_401(harness):
    h = harness
    _, _, meter_no, key = await h.customer_with_meter()
    path = f"/api/meters/{meter_no}/balance"
    raw = b'{"balance_cents": 5}'
    headers = signed_headers(meter_no, key, "POST", path, raw)
    headers["X-Mita-Signature"] = "\u00e9" * 64
    resp = await h.client.post(path, data=raw, headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthorized"
    assert (await h.store.get_meter(meter_no))["current_balance_cents"] == 0


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


async def test_domain_store_errors_keep_their_message(harness):
    h = harness
    user_id, _ = await h.create_customer()
    await h.register_meter(user_id, "MTR-9")
    resp = await h.client.post("/api/meters", json={"meter_no": "MTR-9", "user_id": user_id},
                               headers=h.op())
    assert resp.status == 409 and "MTR9" in (await resp.json())["message"]


async def test_an_unreachable_gateway_does_not_show_its_address_to_the_customer(harness,
                                                                               caplog):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    h.daraja.base_url = "http://127.0.0.1:9"
    resp = await h.stk_push(auth, meter_no)
    assert resp.status == 502
    message = (await resp.json())["message"]
    assert "127.0.0.1" not in message and "Daraja" not in message
    logged = [r for r in caplog.records if r.levelname == "ERROR" and "stk push" in r.msg]
    assert logged and "127.0.0.1" in logged[0].error and logged[0].meter_no == meter_no


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


async def test_a_crash_in_a_callback_never_logs_the_callback_secret(harness, monkeypatch,
                                                                    caplog):
    from tests.cloud.cloud_harness import SECRET, stk_failure
    h = harness

    async def boom(result):
        raise RuntimeError("bug")
    monkeypatch.setattr(h.payments, "apply_stk_result", boom)
    resp = await h.post_callback(stk_failure("ws_CO_1"))
    assert resp.status == 500
    # mita's own loggers (aiohttp's access logger is off in `serve`: access_log=None)
    ours = [r for r in caplog.records if r.name.startswith("mita")]
    assert any(r.levelname == "ERROR" for r in ours)
    assert all(SECRET not in r.getMessage() and SECRET not in str(vars(r)) for r in ours)


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
        assert await h.payments.settle_pending() == {"query_error": 1}
        assert (await h.store.get_stk_request(checkout))["status"] == "pending"
    # M-Pesa itself refusing the query about this request is an answer: give up then
    h.payments.daraja = _Query(DarajaRejected("Invalid CheckoutRequestID", "400.002.02", 400))
    assert await h.payments.settle_pending() == {"gave_up": 1}
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


async def test_meter_endpoints_do_not_tell_strangers_which_meters_exist(harness):
    h = harness
    _, _, meter_no, key = await h.customer_with_meter("MTR-0001")
    answers = []
    for target in (meter_no, "MTR0002"):
        for path in (f"/api/meters/{target}/balance", f"/api/meters/{target}/status"):
            raw = b'{"balance_cents": 1, "wifi_status": "up"}'
            unsigned = await h.client.post(path, data=raw)
            guessed = await h.client.post(path, data=raw, headers=signed_headers(
                target, "dk_guessed", "POST", path, raw))
            answers.append([(r.status, await r.json()) for r in (unsigned, guessed)])
    assert all(a == answers[0] for a in answers), answers
    assert answers[0][1][0] == 401
    # the meter itself still gets through
    resp = await h.signed_post(meter_no, key, f"/api/meters/{meter_no}/balance",
                               {"balance_cents": 700})
    assert resp.status == 200
    assert (await h.store.get_meter(meter_no))["current_balance_cents"] == 700


async def test_health_timestamp_is_the_reference_iso_form_and_no_server_version(harness):
    import re
    resp = await harness.client.get("/health")
    body = await resp.json()
    assert set(body) == {"status", "timestamp", "uptime"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])
    for path in ("/health", "/nope"):
        resp = await harness.client.get(path)
        assert "aiohttp" not in resp.headers.get("Server", "")
        assert "Python" not in resp.headers.get("Server", "")
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


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


async def test_edge_of_calendar_dates_and_huge_limits_are_answers_not_crashes(harness):
    h = harness
    user_id, auth, meter_no, _ = await h.customer_with_meter()
    consumption = f"/api/meters/{meter_no}/consumption"
    for query, status in (("to=0001-01-05", 200), ("from=0001-01-01&to=0001-01-01", 200),
                          ("to=9999-12-31", 200), ("from=0001-01-01&to=9999-12-31", 400)):
        resp = await h.client.get(f"{consumption}?{query}", headers=auth)
        assert resp.status == status, (query, await resp.text())
    for path in (f"/api/transactions/{user_id}", f"/api/transactions/meter/{meter_no}"):
        resp = await h.client.get(path + "?limit=" + "1" * 5000, headers=auth)
        assert resp.status == 400 and (await resp.json())["error"] == "bad_request"


async def test_user_fields_refuse_control_characters(harness):
    h = harness
    for user in ({"name": "x", "user_id": "a\x00b"}, {"name": "x\nInjected: log line"},
                 {"name": "x", "email": "a\x1b[31m@b"}):
        resp = await h.client.post("/api/users", json=user, headers=h.op())
        assert resp.status == 400, user


async def test_a_mistyped_callback_url_never_logs_the_secret(harness, caplog):
    import logging
    from tests.cloud.cloud_harness import SECRET, stk_failure
    h = harness
    caplog.set_level(logging.INFO)
    for path in (f"/daraja/callback/{SECRET}/", f"/daraja/c2b/confirmation/{SECRET}/x",
                 f"/{SECRET}"):
        resp = await h.post_callback(stk_failure("ws_CO_1"), path=path)
        assert resp.status in (404, 405)
    access = [r for r in caplog.records if r.name == "mita.access"]
    assert len(access) == 3 and all("<secret>" in r.path for r in access)
    assert all(SECRET not in r.getMessage() and SECRET not in str(vars(r))
               for r in caplog.records if r.name.startswith("mita"))


# -- starting pushes: no double prompts, no prompt floods -----------------------------------

async def test_a_double_tap_sends_one_prompt_until_that_one_is_answered(harness):
    import asyncio
    from tests.cloud.cloud_harness import stk_failure
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
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
    now = [1_800_000_000.0]
    h.payments.clock = lambda: now[0]
    for amount in range(10, 15):
        assert (await h.stk_push(auth, meter_no, amount)).status == 201
    resp = await h.stk_push(auth, meter_no, 20)
    assert resp.status == 429 and (await resp.json())["error"] == "too_many_requests"
    assert len(h.sandbox.stk) == 5
    assert (await h.stk_push(h.op(), meter_no, 21)).status == 201  # operators are not limited
    now[0] += 60
    assert (await h.stk_push(auth, meter_no, 22)).status == 201


def test_serve_logging_is_key_value_lines_without_state_machine_chatter(capsys):
    import logging
    from cloud.__main__ import setup_logging
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    setup_logging()
    try:
        logging.getLogger("transitions.core").info("Finished processing state new exit")
        logging.getLogger("mita.payments").info("payment credited", extra={
            "receipt": "QK1", "amount_cents": 5000})
        err = capsys.readouterr().err
        assert "Finished processing" not in err
        assert "payment credited amount_cents=5000 receipt='QK1'" in err
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


async def test_a_path_cannot_forge_log_lines(harness, caplog):
    import logging
    caplog.set_level(logging.INFO)
    resp = await harness.client.get("/nope%0A2026-01-01 INFO mita.payments payment credited")
    assert resp.status == 404
    access = [r for r in caplog.records if r.name == "mita.access"]
    assert access and "\n" not in access[0].getMessage() and "\n" not in access[0].path


async def test_register_c2b_gives_daraja_the_secret_urls_without_printing_the_secret(
        aiohttp_server, capsys):
    from cloud.__main__ import register_c2b
    from cloud.config import config_from_mapping
    from cloud.daraja_sandbox import SANDBOX, make_app
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


async def test_a_wrong_callback_secret_is_a_warning_for_the_operator(harness, caplog):
    from tests.cloud.cloud_harness import SECRET, stk_failure
    resp = await harness.post_callback(stk_failure("ws_CO_1"),
                                       path="/daraja/callback/not-the-secret-0000")
    assert resp.status == 403
    warned = [r for r in caplog.records if r.name == "mita.daraja" and r.levelname == "WARNING"]
    assert warned and warned[0].path == "/daraja/callback/{secret}"
    assert all(SECRET not in str(vars(r)) for r in warned)


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
