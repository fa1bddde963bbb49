"""Review fixes (#4), security and robustness: each test names a hole found in review and
fails if it reopens (meter auth, what errors and logs reveal, hostile input)."""

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


async def test_a_wrong_callback_secret_is_a_warning_for_the_operator(harness, caplog):
    from tests.cloud.cloud_harness import SECRET, stk_failure
    resp = await harness.post_callback(stk_failure("ws_CO_1"),
                                       path="/daraja/callback/not-the-secret-0000")
    assert resp.status == 403
    warned = [r for r in caplog.records if r.name == "mita.daraja" and r.levelname == "WARNING"]
    assert warned and warned[0].path == "/daraja/callback/{secret}"
    assert all(SECRET not in str(vars(r)) for r in warned)
