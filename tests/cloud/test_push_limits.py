"""STK push limits (issue #14 part 7): per phone whoever asks, per meter, per customer and per
operator; counted in the store, so a restart or a second instance does not reset them; a 429
with Retry-After and a counter for each refusal."""

from cloud.auth import Principal
from cloud.push_guard import PushGuard, TooManyPushes
from cloud.store.sqlite import SqliteStore

import pytest

from tests.cloud.cloud_harness import config, harness  # noqa: F401  (fixtures)

STRANGER = "0799000111"


async def test_a_strangers_phone_gets_at_most_three_prompts_whoever_asks(harness):
    h = harness
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
    _, first, meter_a, _ = await h.customer_with_meter("MTR-A")
    for amount in (10, 11, 12):
        assert (await h.stk_push(first, meter_a, amount, phone=STRANGER)).status == 201
    _, second, meter_b, _ = await h.customer_with_meter("MTR-B")
    resp = await h.stk_push(second, meter_b, 13, phone=STRANGER)  # another account: same phone
    body = await resp.json()
    assert resp.status == 429 and body["error"] == "too_many_requests"
    assert "phone" in body["message"] and 0 < int(resp.headers["Retry-After"]) <= 600
    refused = await h.stk_push(h.op(), meter_b, 14, phone=STRANGER)  # operators too
    assert refused.status == 429
    assert len(h.sandbox.stk) == 3
    assert h.payments.counters["push_limited_phone"] == 2
    assert (await h.stk_push(second, meter_b, 13)).status == 201  # their own phone is fine


async def test_a_meter_gets_at_most_six_prompts_in_ten_minutes(harness):
    h = harness
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
    now = [1_800_000_000.0]
    h.payments.clock = lambda: now[0]
    _, auth, meter_no, _ = await h.customer_with_meter()
    for n in range(6):
        now[0] += 61  # past the per-customer minute each time
        assert (await h.stk_push(auth, meter_no, 10 + n, phone=f"071100000{n}")).status == 201
    now[0] += 61
    resp = await h.stk_push(h.op(), meter_no, 30, phone="0711000009")
    assert resp.status == 429 and "meter" in (await resp.json())["message"]
    assert h.payments.counters["push_limited_meter"] == 1
    now[0] += 600
    assert (await h.stk_push(auth, meter_no, 30, phone="0711000009")).status == 201


async def test_an_operator_is_limited_too(harness):
    h = harness
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
    h.payments.push_guard.limits["operator"] = (2, 60)
    _, _, meter_a, _ = await h.customer_with_meter("MTR-A")
    _, _, meter_b, _ = await h.customer_with_meter("MTR-B")
    assert (await h.stk_push(h.op(), meter_a, 10, phone="0711000001")).status == 201
    assert (await h.stk_push(h.op(), meter_b, 10, phone="0711000002")).status == 201
    resp = await h.stk_push(h.op(), meter_a, 11, phone="0711000003")
    assert resp.status == 429 and "operator" in (await resp.json())["message"]
    assert h.payments.counters["push_limited_operator"] == 1


@pytest.mark.parametrize("second_instance", [False, True], ids=["restart", "two instances"])
async def test_counts_outlive_the_process_that_made_them(tmp_path, second_instance):
    path = tmp_path / "mita.sqlite3"
    store = await SqliteStore.open(path)
    now = 1_800_000_000.0
    customer = Principal("u1", "customer")
    guard = PushGuard(lambda: now)
    for amount in (10, 11, 12):
        await guard.reserve(store, customer, "M1", "254799000111", amount)
    other = await SqliteStore.open(path) if second_instance else store
    if not second_instance:
        await store.close()
        other = await SqliteStore.open(path)
    fresh = PushGuard(lambda: now + 1)  # a new process: nothing in memory
    with pytest.raises(TooManyPushes) as refused:
        await fresh.reserve(other, Principal("u2", "customer"), "M2", "254799000111", 13)
    assert refused.value.retry_after_s == 599
    assert fresh.counters["push_limited_phone"] == 1
    await other.close()
    if second_instance:
        await store.close()


def test_the_limits_are_configurable():
    from cloud.config import ConfigError, config_from_mapping
    cfg = config_from_mapping({"MITA_PUSH_LIMITS": "phone=5/900, operator=100/60"})
    assert cfg.push_limits == {"phone": (5, 900), "operator": (100, 60)}
    for bad in ("phone=0/60", "phone=5", "stranger=1/60", "phone=1/60;meter=2/60"):
        with pytest.raises(ConfigError):
            config_from_mapping({"MITA_PUSH_LIMITS": bad})


async def test_configured_limits_reach_the_guard(aiohttp_client, tmp_path):
    from cloud.app import create_app
    from tests.cloud.cloud_harness import Harness, make_config
    h = Harness(await aiohttp_client(create_app(
        make_config(tmp_path, push_limits={"phone": (1, 600)}), settle=False)))
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
    _, auth, meter_no, _ = await h.customer_with_meter()
    assert (await h.stk_push(auth, meter_no, 10)).status == 201
    assert (await h.stk_push(auth, meter_no, 11)).status == 429
