"""Bad input of every kind gets a JSON 4xx with a message (never a 500 or a traceback), and
nothing already recorded changes."""

import json

from cloud.app import create_app
from tests.cloud.cloud_harness import (SECRET, Harness, c2b_body, config, harness,  # noqa: F401
                                       make_config, stk_success)


async def _seed(h):
    """One customer, one meter, one recorded payment: the state bad input must not touch."""
    user_id, auth, meter_no, key = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none")
    checkout = (await (await h.stk_push(auth, meter_no)).json())["checkout_request_id"]
    await h.post_callback(stk_success(checkout, "QKSEED"))
    return user_id, auth, meter_no, key, checkout


async def _state(h, meter_no, checkout):
    snap = await h.snapshot(meter_no)
    snap["stk"] = await h.store.get_stk_request(checkout)
    snap["pending"] = await h.store.list_pending_stk_requests(10**15)
    snap["tariff"] = await h.store.get_tariff()
    snap["meters"] = await h.store.list_meters()
    return snap


async def _assert_json_4xx(resp, status=None):
    text = await resp.text()
    assert 400 <= resp.status < 500, (resp.status, text)
    if status is not None:
        assert resp.status == status, text
    body = json.loads(text)
    assert set(body) == {"error", "message"} and body["message"], body
    assert "Traceback" not in text and "File \"" not in text


STKPUSH_BODIES = [
    (b"{not json", 400), (b"", 400), (b"[1, 2]", 400), (b'"text"', 400), (b"NaN", 400),
    (b"[" * 5000 + b"]" * 5000, 400), (b"\xff\xfe garbage", 400),
    (json.dumps({"phone": "0712345678", "amount": 100}), 400),              # no meter
    (json.dumps({"meter_no": "MTR0001", "amount": 100}), 400),              # no phone
    (json.dumps({"meter_no": "MTR0001", "phone": "0712345678"}), 400),      # no amount
    (json.dumps({"meter_no": 7, "phone": "0712345678", "amount": 100}), 400),
    (json.dumps({"meter_no": "MTR0001", "phone": "0712345678", "amount": "100"}), 400),
    (json.dumps({"meter_no": "MTR0001", "phone": "0712345678", "amount": 10.5}), 400),
    (json.dumps({"meter_no": "MTR0001", "phone": "0712345678", "amount": True}), 400),
    (json.dumps({"meter_no": "MTR0001", "phone": "0712345678", "amount": 0}), 400),
    (json.dumps({"meter_no": "MTR0001", "phone": "0712345678", "amount": -5}), 400),
    (json.dumps({"meter_no": "MTR0001", "phone": "0712345678", "amount": 70_001}), 400),
    (json.dumps({"meter_no": "MTR0001", "phone": "0812345678", "amount": 100}), 400),
    (json.dumps({"meter_no": "MTR0001", "phone": "07123", "amount": 100}), 400),
    (json.dumps({"meter_no": "MTR0001", "phone": ["0712345678"], "amount": 100}), 400),
    (json.dumps({"meter_no": "NOSUCH", "phone": "0712345678", "amount": 100}), 404),
    (json.dumps({"meter_no": "!!!", "phone": "0712345678", "amount": 100}), 404),
]


# One seeded app per test, many bad requests in it: each is checked on its own.
async def test_bad_stk_push_bodies_are_refused_and_change_nothing(harness):
    h = harness
    _, auth, meter_no, _, checkout = await _seed(h)
    before = await _state(h, meter_no, checkout)
    pushes_before = len(h.sandbox.stk)
    for raw, status in STKPUSH_BODIES:
        resp = await h.client.post("/api/payments/stkpush", data=raw,
                                   headers=dict(auth, **{"Content-Type": "application/json"}))
        await _assert_json_4xx(resp, status)
        assert await _state(h, meter_no, checkout) == before, raw
        assert len(h.sandbox.stk) == pushes_before, raw  # M-Pesa was never asked


CALLBACK_BODIES = [
    b"{", b"null", b"[]", b'{"Body": null}', b'{"Body": {"stkCallback": []}}',
    json.dumps({"Body": {"stkCallback": {"CheckoutRequestID": "x", "ResultCode": "zero"}}}),
    json.dumps(stk_success("ws_CO_X", "QKNEW", amount="lots")),
    json.dumps(stk_success("ws_CO_X", "QKNEW", amount=-1)),
]


async def test_garbage_callbacks_get_4xx_json_and_change_nothing(harness):
    h = harness
    _, _, meter_no, _, checkout = await _seed(h)
    before = await _state(h, meter_no, checkout)
    for raw in CALLBACK_BODIES:
        for path in (f"/daraja/callback/{SECRET}", f"/daraja/c2b/confirmation/{SECRET}",
                     f"/daraja/c2b/validation/{SECRET}"):
            resp = await h.post_callback(raw, path=path)
            await _assert_json_4xx(resp, 400)
        assert await _state(h, meter_no, checkout) == before, raw


async def test_a_garbled_callback_for_a_recorded_payment_does_not_undo_it(harness):
    h = harness
    _, _, meter_no, _, checkout = await _seed(h)
    before = await _state(h, meter_no, checkout)
    broken = stk_success(checkout, "QKSEED")
    del broken["Body"]["stkCallback"]["CallbackMetadata"]
    await _assert_json_4xx(await h.post_callback(broken), 400)
    resp = await h.post_callback({"Body": {"stkCallback": {
        "CheckoutRequestID": checkout, "ResultCode": 1032, "ResultDesc": "cancelled"}}})
    assert resp.status == 200  # acknowledged, but a paid request stays paid
    assert await _state(h, meter_no, checkout) == before
    resp = await h.client.post(f"/daraja/c2b/confirmation/{SECRET}",
                               json=c2b_body("QKSEED", "MTR0001", "999.00"))
    assert resp.status == 200   # the receipt is already recorded: a duplicate, not a change
    assert await _state(h, meter_no, checkout) == before


BAD_OPERATOR_REQUESTS = [
    ("POST", "/api/users", {}), ("POST", "/api/users", {"name": ""}),
    ("POST", "/api/users", {"name": "A", "role": "god"}),
    ("POST", "/api/users", {"name": "A", "phone_number": "12"}),
    ("POST", "/api/meters", {"meter_no": "", "user_id": "u"}),
    ("POST", "/api/meters", {"meter_no": "M1"}),
    ("POST", "/api/meters", {"meter_no": ["M1"], "user_id": "u"}),
    ("PUT", "/api/tariff", {"version": 0, "bands": [{"rate": 10}]}),
    ("PUT", "/api/tariff", {"version": "3", "bands": [{"rate": 10}]}),
    ("PUT", "/api/tariff", {"version": 3, "bands": [{"rate": 12.5}]}),
    ("PUT", "/api/tariff", {"version": 3, "bands": [{"rate": -1}]}),
    ("PUT", "/api/tariff", {"version": 3, "bands": []}),
    ("PUT", "/api/tariff", {"version": 3, "bands": [{"rate": 10}], "price": 5}),
    ("PUT", "/api/tariff", {"version": 3, "bands": [{"upto_kwh": 30, "rate": 10}]}),
    ("PUT", "/api/tariff", {"version": 3, "bands": [{"rate": 10}], "vat_bp": 20000}),
]


async def test_bad_operator_requests_are_refused(harness):
    h = harness
    _, _, meter_no, _, checkout = await _seed(h)
    before = await _state(h, meter_no, checkout)
    for method, path, body in BAD_OPERATOR_REQUESTS:
        resp = await h.client.request(method, path, json=body, headers=h.op())
        await _assert_json_4xx(resp, 400)
        assert await _state(h, meter_no, checkout) == before, body


async def test_bad_balance_reports_are_refused(harness):
    h = harness
    _, _, meter_no, key, checkout = await _seed(h)
    before = await _state(h, meter_no, checkout)
    for body in ({}, {"balance_cents": "12"}, {"balance_cents": 1.5}, {"balance_cents": None},
                 {"balance_cents": 10**15}, {"balance": 12}, [1]):
        resp = await h.signed_post(meter_no, key, f"/api/meters/{meter_no}/balance", body)
        await _assert_json_4xx(resp, 400)
        assert await _state(h, meter_no, checkout) == before, body


async def test_unknown_routes_and_methods_are_json_errors(harness):
    h = harness
    await _assert_json_4xx(await h.client.get("/nope"), 404)
    await _assert_json_4xx(await h.client.get("/api/meters"), 405)
    await _assert_json_4xx(await h.client.delete("/health"), 405)
    await _assert_json_4xx(await h.client.get("/api/transactions/u1?limit=abc",
                                              headers=h.op()), 400)
    await _assert_json_4xx(await h.client.get("/api/transactions/u1?limit=0",
                                              headers=h.op()), 400)


async def test_oversized_bodies_get_413_json_and_change_nothing(aiohttp_client, tmp_path):
    cfg = make_config(tmp_path, max_body_bytes=2048)
    h = Harness(await aiohttp_client(create_app(cfg, settle=False)))
    _, auth, meter_no, _, checkout = await _seed(h)
    before = await _state(h, meter_no, checkout)
    big = json.dumps({"meter_no": meter_no, "phone": "0712345678", "amount": 100,
                      "pad": "x" * 4000})
    for path, headers in (("/api/payments/stkpush", auth), (f"/daraja/callback/{SECRET}", {})):
        resp = await h.client.post(path, data=big,
                                   headers=dict(headers, **{"Content-Type": "application/json"}))
        await _assert_json_4xx(resp, 413)
    assert await _state(h, meter_no, checkout) == before


async def test_a_store_failure_is_a_500_json_without_details(harness, monkeypatch):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()

    async def broken(*args):
        raise RuntimeError("disk on fire at /secret/path")
    monkeypatch.setattr(h.store, "get_meter", broken)
    resp = await h.client.get(f"/api/meters/{meter_no}", headers=auth)
    assert resp.status == 500
    body = await resp.json()
    assert body == {"error": "internal", "message": "internal server error"}
