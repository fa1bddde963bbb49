"""Abuse limits that are not about money (issue #14 part 3): sign-in and meter-signature
failures lock a client out, callbacks from outside the allow-list, bodies too large and JSON
too deep are refused; each a clear 4xx/429 with a counter, and nothing recorded changes."""

import ipaddress

import pytest

from cloud.abuse import AbuseGuard
from cloud.app import create_app
from cloud.config import ConfigError, config_from_mapping
from cloud.keys import ABUSE
from tests.cloud.cloud_harness import (SECRET, Harness, c2b_body, config, harness,  # noqa: F401
                                       make_config, stk_success)

WRONG = {"Authorization": "Bearer mita_not-a-key"}


def _counters(h):
    return h.app[ABUSE].counters


async def test_ten_failed_sign_ins_lock_the_client_out_even_with_the_right_key(harness):
    h = harness
    now = [1_800_000_000.0]
    h.app[ABUSE].clock = lambda: now[0]
    user_id, auth = await h.create_customer()
    for _ in range(10):
        assert (await h.client.get(f"/api/transactions/{user_id}", headers=WRONG)).status == 401
    locked = await h.client.get(f"/api/transactions/{user_id}", headers=auth)
    assert locked.status == 429 and (await locked.json())["error"] == "too_many_requests"
    assert locked.headers["Retry-After"] == "300"
    assert _counters(h)["auth_failures"] == 10 and _counters(h)["auth_locked_out"] == 1
    assert (await h.client.get(f"/api/transactions/{user_id}")).status == 401  # no key: no guess
    now[0] += 300
    assert (await h.client.get(f"/api/transactions/{user_id}", headers=auth)).status == 200


async def test_the_lockout_holds_for_a_fresh_process_on_the_same_store(harness):
    h = harness
    for _ in range(10):
        await h.client.get("/api/meters/MTR-0001", headers=WRONG)
    fresh = AbuseGuard(h.store, h.app[ABUSE].clock)  # nothing in memory
    wait_ms, _ = await h.store.take_rate_slot(fresh._limits("127.0.0.1"),
                                              int(fresh.clock() * 1000), count=False)
    assert wait_ms > 0


async def test_bad_meter_signatures_count_as_failed_sign_ins(harness):
    h = harness
    _, _, meter_no, key = await h.customer_with_meter()
    path = f"/api/meters/{meter_no}/balance"
    for _ in range(10):
        resp = await h.signed_post(meter_no, "wrong-key", path, {"balance_cents": 5})
        assert resp.status == 401
    refused = await h.signed_post(meter_no, key, path, {"balance_cents": 5})
    assert refused.status == 429 and "Retry-After" in refused.headers
    assert (await h.store.get_meter(meter_no))["current_balance_cents"] == 0


async def test_callbacks_from_outside_the_allow_list_are_refused_and_counted(aiohttp_client,
                                                                             tmp_path):
    cfg = make_config(tmp_path, callback_allowlist=config_from_mapping(
        {"MITA_CALLBACK_ALLOWLIST": "safaricom"}).callback_allowlist)
    h = Harness(await aiohttp_client(create_app(cfg, settle=False)))
    _, _, meter_no, _ = await h.customer_with_meter()
    c2b = await h.client.post(f"/daraja/c2b/confirmation/{SECRET}",
                              json=c2b_body("OUT00001", meter_no))
    stk = await h.post_callback(stk_success("ws_CO_1", "OUT00002"))
    assert c2b.status == stk.status == 403
    assert (await c2b.json())["error"] == "forbidden"
    assert _counters(h)["callbacks_outside_allowlist"] == 2
    assert await h.store.get_transaction_by_receipt("OUT00001") is None
    wrong_secret = await h.client.post("/daraja/c2b/confirmation/not-the-secret-at-all",
                                       json=c2b_body("OUT00003", meter_no))
    assert wrong_secret.status == 403 and _counters(h)["callbacks_bad_secret"] == 1


def test_the_safaricom_allow_list_is_the_published_ranges_and_configurable():
    nets = config_from_mapping({"MITA_CALLBACK_ALLOWLIST": "safaricom, 10.1.0.0/16"}) \
        .callback_allowlist
    assert ipaddress.ip_address("196.201.213.44") in nets[1]
    assert ipaddress.ip_network("10.1.0.0/16") in nets
    assert not any(ipaddress.ip_address("127.0.0.1") in net for net in nets)
    with pytest.raises(ConfigError):
        config_from_mapping({"MITA_CALLBACK_ALLOWLIST": "safaricom, nonsense"})


async def test_a_body_over_the_limit_is_413_json_and_counted(harness):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    big = b'{"meter_no": "MTR-0001", "pad": "' + b"x" * (70 * 1024) + b'"}'
    resp = await h.client.post("/api/payments/stkpush", data=big,
                               headers=dict(auth, **{"Content-Type": "application/json"}))
    assert resp.status == 413 and (await resp.json())["error"] == "payload_too_large"
    assert _counters(h)["bodies_too_large"] == 1 and h.sandbox.stk == {}


def test_json_depth_counts_each_level_of_objects_and_lists():
    import json
    from cloud.errors import _MAX_JSON_DEPTH, _depth
    assert [_depth(v) for v in (7, "x", None, {}, [], {"a": 1, "b": [2, {"c": []}]})] == \
        [0, 0, 0, 1, 1, 4]
    at_cap = json.loads("[" * _MAX_JSON_DEPTH + "]" * _MAX_JSON_DEPTH)
    assert _depth(at_cap) == _MAX_JSON_DEPTH
    assert _depth([at_cap, 1]) == _MAX_JSON_DEPTH + 1  # one past the cap: stops counting
    assert _depth([[at_cap]]) == _MAX_JSON_DEPTH + 1


@pytest.mark.parametrize("depth", [33, 30_000])
async def test_json_nested_too_deep_is_400_and_counted(harness, depth):
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    nested = '{"meter_no": "MTR-0001", "x": ' + "[" * depth + "]" * depth + "}"
    resp = await h.client.post("/api/payments/stkpush", data=nested, headers=auth)
    assert resp.status == 400 and "nested" in (await resp.json())["message"]
    assert _counters(h)["json_too_deep"] == 1 and h.sandbox.stk == {}
    shallow = '{"meter_no": "MTR-0001", "x": ' + "[" * 30 + "]" * 30 + ', "phone": "0712345678"' \
              ', "amount": 10}'
    assert (await h.client.post("/api/payments/stkpush", data=shallow, headers=auth)).status \
        == 201


async def test_the_counters_are_shown_to_operators(harness):
    h = harness
    counters = await (await h.client.get("/api/payments/counters", headers=h.op())).json()
    assert {"auth_failures", "json_too_deep", "push_limited_phone", "credited"} <= set(counters)
