"""Settlement by STK query: requests whose callback never came are credited, failed or given
up on, exactly once alongside late callbacks; the background loop survives a failing pass."""

import asyncio

from cloud.payments import GAVE_UP_CODE
from cloud.settle import settle_forever, settle_pending
from tests.cloud.cloud_harness import (config, eventually, harness, pending_push,  # noqa: F401
                                       sandbox_settled, stk_success)


async def test_settle_credits_a_paid_request_whose_callback_never_came(harness):
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    await eventually(lambda: sandbox_settled(h, checkout))
    assert await settle_pending(h.payments) == {}  # not old enough yet
    h.payments.clock = lambda: 10**10  # far later
    assert await settle_pending(h.payments) == {"credited": 1}
    txs = (await h.snapshot(meter_no))["transactions"]
    assert [(t["mpesa_receipt"], t["source"]) for t in txs] == [(checkout, "stk_query")]


async def test_late_callback_after_settlement_by_query_does_not_credit_twice(harness):
    h = harness
    meter_no, checkout, _ = await pending_push(h)
    await eventually(lambda: sandbox_settled(h, checkout))
    h.payments.clock = lambda: 10**10
    await settle_pending(h.payments)
    resp = await h.post_callback(stk_success(checkout, "QKLATE"))
    assert resp.status == 200
    h.payments._credited.clear()  # as after a restart: only the store remembers
    resp = await h.post_callback(stk_success(checkout, "QKLATE"))
    assert resp.status == 200
    snap = await h.snapshot(meter_no)
    assert len(snap["transactions"]) == 1 and len(snap["recharges"]) == 1


async def test_settle_records_failures_and_retries_while_still_pending(harness):
    h = harness
    user_id, auth, meter_no, key = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="cancelled", callback_delay_s=3600)
    checkout = (await (await h.stk_push(auth, meter_no)).json())["checkout_request_id"]
    created = (await h.store.get_stk_request(checkout))["created_at"]
    h.payments.clock = lambda: (created + 60_000) / 1000
    assert await settle_pending(h.payments) == {"pending": 1}
    assert (await h.store.get_stk_request(checkout))["status"] == "pending"
    h.payments.clock = lambda: (created + 601_000) / 1000  # past the give-up age
    assert await settle_pending(h.payments) == {"gave_up": 1}
    stk = await h.store.get_stk_request(checkout)
    assert stk["status"] == "failed" and stk["result_code"] == GAVE_UP_CODE
    assert "timeout" in stk["result_desc"]
    assert (await h.snapshot(meter_no))["transactions"] == []


async def test_settle_marks_a_query_failure_without_credit(harness):
    h = harness
    user_id, auth, meter_no, key = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="wrong_pin", callback_delay_s=0)
    h.daraja.callback_url = "http://127.0.0.1:9/nowhere"  # the callback is lost
    checkout = (await (await h.stk_push(auth, meter_no)).json())["checkout_request_id"]
    await eventually(lambda: sandbox_settled(h, checkout))
    h.payments.clock = lambda: 10**10
    assert await settle_pending(h.payments) == {"failed": 1}
    stk = await h.store.get_stk_request(checkout)
    assert stk["status"] == "failed" and stk["result_code"] == 2001


async def test_the_settle_loop_carries_on_after_a_failing_pass():
    calls = []

    async def flaky_pass():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("store hiccup")
        return {}
    task = asyncio.create_task(settle_forever(flaky_pass, 0.001))
    try:
        async def twice():
            return len(calls) >= 2
        assert await eventually(twice, timeout_s=2)
    finally:
        task.cancel()


async def test_only_the_lease_holder_runs_the_settle_pass(tmp_path):
    from cloud.settle import leased
    from cloud.store.sqlite import SqliteStore
    store = await SqliteStore.open(tmp_path / "mita.sqlite3")
    other = await SqliteStore.open(tmp_path / "mita.sqlite3")  # a second cloud process
    now = [1_000.0]
    runs = []

    def counting(name):
        async def run_pass():
            runs.append(name)
            return {"ok": 1}
        return run_pass
    a = leased(store, counting("a"), 10, "a", lambda: now[0])
    b = leased(other, counting("b"), 10, "b", lambda: now[0])
    for _ in range(3):
        assert await a() == {"ok": 1}
        assert await b() is None
        now[0] += 10
    now[0] += 31  # a stops renewing (it died): after three periods b takes over
    assert await b() == {"ok": 1}
    assert await a() is None
    assert runs == ["a", "a", "a", "b"]
    await store.close()
    await other.close()
