"""Who may do what: API keys (hashed), Firebase ID tokens, customers fenced to their own
meters and transactions, and meters signing their requests against replays."""

import threading

import pytest

from cloud.app import create_app
from cloud.auth import (AuthError, MeterVerifier, hash_key, sign_request, signed_headers)
from cloud.keys import STORE
from tests.cloud.cloud_harness import Harness, config, harness, make_config  # noqa: F401


async def test_api_keys_are_stored_only_as_their_hash(harness):
    h = harness
    resp = await h.client.post("/api/users", json={"name": "Amina"}, headers=h.op())
    body = await resp.json()
    key = body["api_key"]
    assert await h.store.find_user_by_api_key_hash(hash_key(key)) is not None
    assert await h.store.find_user_by_api_key_hash(key) is None
    user = await h.store.get_user(body["user_id"])
    assert key not in repr(user)


async def test_missing_wrong_or_malformed_credentials_get_401(harness):
    h = harness
    _, _, meter_no, _ = await h.customer_with_meter()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer"}):
        resp = await h.client.get(f"/api/meters/{meter_no}", headers=headers)
        assert resp.status == 401
        assert (await resp.json())["error"] == "unauthorized"


async def test_customers_see_only_their_own_meters_and_transactions(harness):
    h = harness
    amina, amina_auth, meter_a, _ = await h.customer_with_meter("MTR-A")
    baraka, baraka_auth = await h.create_customer("Baraka")
    await h.register_meter(baraka, "MTR-B")
    assert (await h.client.get(f"/api/meters/{meter_a}", headers=amina_auth)).status == 200
    for path in (f"/api/meters/{meter_a}", f"/api/transactions/{amina}",
                 f"/api/transactions/meter/{meter_a}", f"/api/meters/{meter_a}/consumption"):
        resp = await h.client.get(path, headers=baraka_auth)
        assert resp.status == 403, path
        assert (await h.client.get(path, headers=h.op())).status == 200, path
    resp = await h.stk_push(baraka_auth, meter_a)
    assert resp.status == 403


async def test_only_operators_register_users_meters_and_tariffs(harness):
    h = harness
    user_id, auth = await h.create_customer()
    for method, path, body in (("POST", "/api/users", {"name": "X"}),
                               ("POST", "/api/meters", {"meter_no": "M9", "user_id": user_id}),
                               ("PUT", "/api/tariff", {"version": 1, "bands": [{"rate": 2500}]})):
        resp = await h.client.request(method, path, json=body, headers=auth)
        assert resp.status == 403, path
    assert await h.store.get_meter("M9") is None
    assert await h.store.get_tariff() is None


async def test_an_operator_created_by_api_is_an_operator(harness):
    h = harness
    resp = await h.client.post("/api/users", json={"name": "Ops", "role": "operator"},
                               headers=h.op())
    op2 = {"Authorization": f"Bearer {(await resp.json())['api_key']}"}
    resp = await h.client.put("/api/tariff", json={"version": 1, "bands": [{"rate": 2500}]},
                              headers=op2)
    assert resp.status == 200


async def test_firebase_id_tokens_are_verified_off_the_loop(aiohttp_client, tmp_path):
    seen = []

    def verify(token):
        seen.append(threading.get_ident())
        if token == "good-customer":
            return {"uid": "cust-1"}
        if token == "good-operator":
            return {"uid": "op-1", "role": "operator"}
        raise ValueError("Token expired")

    cfg = make_config(tmp_path, auth_mode="firebase", operator_key="")
    h = Harness(await aiohttp_client(create_app(cfg, settle=False, verify_id_token=verify)))
    op = {"Authorization": "Bearer good-operator"}
    resp = await h.client.post("/api/users", json={"name": "C", "user_id": "cust-1"}, headers=op)
    assert resp.status == 201
    assert "api_key" not in await resp.json()  # Firebase mode hands out no API keys
    await h.client.post("/api/meters", json={"meter_no": "M1", "user_id": "cust-1"}, headers=op)
    ok = await h.client.get("/api/meters/M1", headers={"Authorization": "Bearer good-customer"})
    assert ok.status == 200
    bad = await h.client.get("/api/meters/M1", headers={"Authorization": "Bearer expired"})
    assert bad.status == 401 and "invalid ID token" in (await bad.json())["message"]
    assert len(seen) == 4
    assert threading.main_thread().ident not in seen  # never on the event loop's thread


# -- meters --------------------------------------------------------------------------------

async def test_a_signed_balance_report_is_stored_as_telemetry(harness):
    h = harness
    _, auth, meter_no, key = await h.customer_with_meter()
    path = f"/api/meters/{meter_no}/balance"
    resp = await h.signed_post(meter_no, key, path, {"balance_cents": 12345})
    assert resp.status == 200
    assert await resp.json() == {"success": True, "balance_cents": 12345}
    assert (await h.store.get_meter(meter_no))["current_balance_cents"] == 12345
    resp = await h.signed_post(meter_no, key, f"/api/meters/{meter_no}/status",
                               {"load_connected": True, "wifi_status": "connected"})
    assert resp.status == 200
    status = (await h.store.get_meter(meter_no))["status"]
    assert status["load_connected"] is True and status["wifi_status"] == "connected"


async def test_customers_and_operators_cannot_write_a_balance(harness):
    h = harness
    _, auth, meter_no, key = await h.customer_with_meter()
    for headers in (auth, h.op()):
        resp = await h.client.post(f"/api/meters/{meter_no}/balance",
                                   json={"balance_cents": 10**9}, headers=headers)
        assert resp.status == 401
    assert (await h.store.get_meter(meter_no))["current_balance_cents"] == 0


async def test_meter_requests_with_bad_signatures_or_replays_are_refused(harness):
    h = harness
    _, _, meter_no, key = await h.customer_with_meter("MTR-1")
    _, _, other, other_key = await h.customer_with_meter("MTR-2")
    path = f"/api/meters/{meter_no}/balance"
    raw = b'{"balance_cents": 500}'
    good = signed_headers(meter_no, key, "POST", path, raw, nonce="abcdef0123")
    assert (await h.client.post(path, data=raw, headers=good)).status == 200
    cases = {
        "replay": good,
        "other meter's key": signed_headers(meter_no, other_key, "POST", path, raw),
        "other meter named": signed_headers(other, other_key, "POST", path, raw),
        "stale": signed_headers(meter_no, key, "POST", path, raw, timestamp=1_000_000),
        "tampered body": dict(signed_headers(meter_no, key, "POST", path, b'{"balance_cents": 1}')),
        "no nonce": {k: v for k, v in signed_headers(meter_no, key, "POST", path, raw).items()
                     if k != "X-Mita-Nonce"},
    }
    for name, headers in cases.items():
        resp = await h.client.post(path, data=raw, headers=headers)
        assert resp.status == 401, name
    assert (await h.store.get_meter(meter_no))["current_balance_cents"] == 500


async def _store_with_meter(path):
    from cloud.store.sqlite import SqliteStore
    store = await SqliteStore.open(path)
    await store.create_user({"user_id": "u1"})
    await store.create_meter("M1", "u1", "k")
    return store


async def test_the_replay_window_is_enforced_with_an_injected_clock(tmp_path):
    store = await _store_with_meter(tmp_path / "mita.sqlite3")
    now = [1_000_000.0]
    verifier = MeterVerifier(store, window_s=300, clock=lambda: now[0])
    headers = signed_headers("M1", "k", "POST", "/p", b"{}", timestamp=1_000_000, nonce="n0000001")
    await verifier.verify("M1", "POST", "/p", headers, b"{}")
    with pytest.raises(AuthError, match="replayed"):
        await verifier.verify("M1", "POST", "/p", headers, b"{}")
    late = signed_headers("M1", "k", "POST", "/p", b"{}", timestamp=1_000_000, nonce="n0000002")
    now[0] += 301
    with pytest.raises(AuthError, match="window"):
        await verifier.verify("M1", "POST", "/p", late, b"{}")
    with pytest.raises(AuthError, match="unknown meter"):
        fresh = signed_headers("M2", "k", "POST", "/p", b"{}", timestamp=int(now[0]))
        await verifier.verify("M2", "POST", "/p", fresh, b"{}")
    await store.close()


async def test_a_request_replayed_to_another_cloud_process_is_refused(tmp_path):
    # two processes on one SQLite file: each opens its own store, as two instances would
    from cloud.store.sqlite import SqliteStore
    first = await _store_with_meter(tmp_path / "mita.sqlite3")
    second = await SqliteStore.open(tmp_path / "mita.sqlite3")
    clock = lambda: 2_000_000.0  # noqa: E731
    a, b = MeterVerifier(first, clock=clock), MeterVerifier(second, clock=clock)
    headers = signed_headers("M1", "k", "POST", "/p", b"{}", timestamp=2_000_000, nonce="n0000009")
    await a.verify("M1", "POST", "/p", headers, b"{}")
    with pytest.raises(AuthError, match="replayed"):
        await b.verify("M1", "POST", "/p", headers, b"{}")
    await first.close()
    await second.close()


def test_the_signature_covers_method_path_timestamp_nonce_and_body():
    base = sign_request("key", "POST", "/a", 1, "nonce123", b"{}")
    assert base == sign_request("key", "post", "/a", 1, "nonce123", b"{}")
    for changed in (("key2", "POST", "/a", 1, "nonce123", b"{}"),
                    ("key", "PUT", "/a", 1, "nonce123", b"{}"),
                    ("key", "POST", "/b", 1, "nonce123", b"{}"),
                    ("key", "POST", "/a", 2, "nonce123", b"{}"),
                    ("key", "POST", "/a", 1, "nonce124", b"{}"),
                    ("key", "POST", "/a", 1, "nonce123", b"{ }")):
        assert sign_request(*changed) != base


async def test_device_key_is_returned_once_and_never_shown_again(harness):
    h = harness
    user_id, auth, meter_no, key = await h.customer_with_meter()
    for headers in (auth, h.op()):
        body = await (await h.client.get(f"/api/meters/{meter_no}", headers=headers)).json()
        assert "device_key" not in body and key not in repr(body)
    assert await h.app[STORE].get_device_key(meter_no) == key
