"""The HTTP API's routes and shapes: reference paths kept, plus payments, registration,
tariff and consumption; security headers and CORS on every answer."""

import datetime

import pytest

from aiohttp import web

from cloud.app import create_app
from tests.cloud.cloud_harness import (Harness, config, harness, make_config,  # noqa: F401
                                       stk_success)


async def test_health_reports_status_time_and_uptime(harness):
    resp = await harness.client.get("/health")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ok"
    assert datetime.datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    assert isinstance(body["uptime"], float) and body["uptime"] >= 0


async def test_every_answer_carries_security_headers_even_errors(harness):
    for path in ("/health", "/nope", "/api/meters/X"):
        resp = await harness.client.get(path)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def test_cors_allows_the_configured_frontend_only(aiohttp_client, tmp_path):
    cfg = make_config(tmp_path, frontend_url="https://dash.example")
    client = await aiohttp_client(create_app(cfg, settle=False))
    pre = await client.options("/api/payments/stkpush", headers={
        "Origin": "https://dash.example", "Access-Control-Request-Method": "POST"})
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    evil = await client.options("/api/payments/stkpush", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert evil.status == 403 and "Access-Control-Allow-Origin" not in evil.headers
    assert (await evil.json())["error"] == "forbidden"
    plain = await client.get("/health", headers={"Origin": "https://dash.example"})
    assert plain.headers["Access-Control-Allow-Origin"] == "https://dash.example"


async def test_registration_normalises_the_meter_number_and_refuses_duplicates(harness):
    h = harness
    user_id, _ = await h.create_customer()
    meter_no, key = await h.register_meter(user_id, "meter 1234-5678")
    assert meter_no == "METER12345678" and key.startswith("dk_") and len(key) > 30
    resp = await h.client.post("/api/meters", json={"meter_no": "METER_12345678",
                                                    "user_id": user_id}, headers=h.op())
    assert resp.status == 409
    resp = await h.client.post("/api/meters", json={"meter_no": "M2", "user_id": "ghost"},
                               headers=h.op())
    assert resp.status == 404


async def test_get_meter_returns_the_reference_shape(harness):
    h = harness
    user_id, auth, meter_no, _ = await h.customer_with_meter()
    body = await (await h.client.get("/api/meters/mtr-0001", headers=auth)).json()
    assert body["meter_no"] == meter_no and body["user_id"] == user_id
    assert body["current_balance_cents"] == 0 and isinstance(body["status"], dict)
    resp = await h.client.get("/api/meters/NOSUCH", headers=h.op())
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"


async def test_stk_push_stores_the_request_before_answering(harness):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none")
    resp = await h.stk_push(auth, meter_no, amount=150, phone="+254 712-345-678")
    assert resp.status == 201
    body = await resp.json()
    stored = await h.store.get_stk_request(body["checkout_request_id"])
    assert stored["status"] == "pending" and stored["amount_cents"] == 15000
    assert stored["phone_number"] == "254712345678" and stored["meter_no"] == meter_no
    sent = h.sandbox.stk[body["checkout_request_id"]]
    assert (sent["Amount"], sent["AccountReference"]) == (150, meter_no)
    status = await (await h.client.get(f"/api/payments/stk/{body['checkout_request_id']}",
                                       headers=auth)).json()
    assert status["status"] == "pending" and status["reason"] is None


async def test_a_gateway_refusal_is_a_502_and_stores_nothing(harness):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    h.sandbox.faults.append({"path": "/mpesa/stkpush/v1/processrequest", "count": 1,
                             "status": 400, "errorCode": "400.002.02",
                             "errorMessage": "Bad Request - Invalid Timestamp"})
    resp = await h.stk_push(auth, meter_no)
    assert resp.status == 502
    body = await resp.json()
    assert body["error"] == "payment_gateway" and "Invalid Timestamp" in body["message"]
    assert await h.store.list_pending_stk_requests(10**15) == []


async def test_an_unreachable_gateway_is_a_json_error_and_stores_nothing(harness):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    h.daraja.base_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    resp = await h.stk_push(auth, meter_no)
    assert resp.status in (502, 504)
    assert (await resp.json())["error"] == "payment_gateway"
    assert await h.store.list_pending_stk_requests(10**15) == []


async def test_transactions_newest_first_with_limit_and_reference_id(harness):
    h = harness
    user_id, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none")
    for i in range(3):
        checkout = (await (await h.stk_push(auth, meter_no, 10 + i)).json())["checkout_request_id"]
        h.payments.clock = lambda i=i: 1_800_000_000 + i
        await h.post_callback(stk_success(checkout, f"QK{i}", amount=10 + i))
    body = await (await h.client.get(f"/api/transactions/{user_id}?limit=2", headers=auth)).json()
    assert [t["mpesa_receipt"] for t in body] == ["QK2", "QK1"]
    assert all(t["id"] == t["transaction_id"] for t in body)
    body = await (await h.client.get(f"/api/transactions/meter/{meter_no}", headers=auth)).json()
    assert [t["amount_cents"] for t in body] == [1200, 1100, 1000]


KENYA_TARIFF = {"version": 2, "effective_from": 1764547200, "utc_offset_min": 180,
                "bands": [{"upto_kwh": 30, "rate": 1200}, {"rate": 2500}], "vat_bp": 1600}


async def test_tariff_is_versioned_and_older_versions_are_refused(harness):
    h = harness
    _, auth = await h.create_customer()
    assert (await h.client.get("/api/tariff", headers=auth)).status == 404
    resp = await h.client.put("/api/tariff", json=KENYA_TARIFF, headers=h.op())
    assert resp.status == 200
    resp = await h.client.put("/api/tariff", json=dict(KENYA_TARIFF, version=1), headers=h.op())
    assert resp.status == 409
    body = await (await h.client.get("/api/tariff", headers=auth)).json()
    # Stored in the firmware's canonical form: the dict meters receive, defaults filled in.
    assert body["version"] == 2 and body["bands"] == KENYA_TARIFF["bands"]
    assert body["vat_bp"] == 1600 and body["tou"] == [] and body["levies"] == []


async def test_the_tariff_is_checked_by_the_meters_own_rules(harness):
    from cloud.tariff import InvalidTariff, validate_tariff
    import pytest
    with pytest.raises(InvalidTariff, match="open-ended"):
        validate_tariff({"version": 1, "bands": [{"upto_kwh": 30, "rate": 1200}]})
    with pytest.raises(InvalidTariff, match="overlap"):
        validate_tariff({"version": 1, "bands": [{"rate": 1}], "tou": [
            {"from": "18:00", "to": "22:00", "factor_bp": 15000},
            {"from": "21:00", "to": "23:00", "factor_bp": 12000}]})
    resp = await harness.client.put("/api/tariff", headers=harness.op(), json={
        "version": 1, "bands": [{"upto_kwh": 30, "rate": 1200}]})
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "invalid_tariff"
    assert "open-ended" in body["message"]


async def test_consumption_history_by_date_range(harness):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.store.put_consumption_hour(meter_no, "2026-01-02", 7, 300, 750)
    await h.store.put_consumption_hour(meter_no, "2026-01-05", 19, 900, 2250)
    resp = await h.client.get(f"/api/meters/{meter_no}/consumption?from=2026-01-01&to=2026-01-03",
                              headers=auth)
    days = await resp.json()
    assert [d["date"] for d in days] == ["2026-01-02"]
    assert days[0]["total_consumption_wh"] == 300 and days[0]["cost_cents"] == 750
    for query in ("from=2026-01-05&to=2026-01-01", "from=yesterday", "from=2020-01-01&to=2026-01-01"):
        resp = await h.client.get(f"/api/meters/{meter_no}/consumption?{query}", headers=auth)
        assert resp.status == 400, query


async def test_a_credit_records_its_recharge_and_then_tells_the_link_to_look(harness):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none")
    checkout = (await (await h.stk_push(auth, meter_no, 20)).json())["checkout_request_id"]
    kicked = []
    h.payments.on_recharge = kicked.append
    await h.post_callback(stk_success(checkout, "QKSINK", amount=20))
    await h.post_callback(stk_success(checkout, "QKSINK", amount=20))  # a re-send: no kick
    assert kicked == [meter_no]
    # pull-only: the link is told only the meter; what to send it reads from the store
    assert [(r["seq"], r["id"], r["amount_cents"], r["status"])
            for r in await h.store.list_recharges(meter_no)] == [(1, "QKSINK", 2000, "pending")]


async def test_the_settle_task_runs_in_the_background(aiohttp_client, tmp_path):
    cfg = make_config(tmp_path, settle_every_s=0.005, settle_after_s=0.001)
    h = Harness(await aiohttp_client(create_app(cfg)))
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none", callback_delay_s=0)
    checkout = (await (await h.stk_push(auth, meter_no)).json())["checkout_request_id"]
    from tests.cloud.cloud_harness import eventually

    async def settled():
        return (await h.store.get_stk_request(checkout))["status"] == "success"
    assert await eventually(settled)
    assert h.payments.counters["settled_by_query"] == 1


def test_create_app_returns_an_application_without_touching_anything(tmp_path):
    app = create_app(make_config(tmp_path))
    assert isinstance(app, web.Application)
    assert not (tmp_path / "mita.sqlite3").exists()


def test_the_cloud_refuses_a_tariff_time_of_unicode_digits_as_the_meter_would():
    # the firmware's validator runs here with its own pure imports (meter.digits); a time in
    # Unicode digits once escaped it as a bare ValueError (found by fuzzing)
    from cloud.tariff import InvalidTariff, validate_tariff
    tariff = {"version": 2, "bands": [{"rate": 2500}], "vat_bp": 0,
              "tou": [{"from": "\u00b2\u00b2:00", "to": "06:00", "factor_bp": 7000}]}
    with pytest.raises(InvalidTariff, match="not HH:MM"):
        validate_tariff(tariff)
