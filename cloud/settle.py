"""Settlement by STK query: requests whose callback never came are credited, failed or given
up on, one pass at a time, and the background task that runs the passes."""

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from cloud.daraja import DarajaError, DarajaPending, DarajaRejected, query_code
from cloud.payments import GAVE_UP_CODE

log = logging.getLogger("mita.settle")


async def settle_pending(payments):
    """Query every request pending longer than settle_after_s. Returns outcome counts."""
    now = int(payments.clock() * 1000)
    cutoff = now - int(payments.config.settle_after_s * 1000)
    outcomes = {}
    for request in await payments.store.list_pending_stk_requests(cutoff):
        async with payments.serialised(request["checkout_request_id"]):
            outcome = await _settle_one(payments, request, now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


async def _settle_one(payments, request, now):
    checkout = request["checkout_request_id"]
    current = await payments.store.get_stk_request(checkout)
    if current is None or current["status"] != "pending":
        return "already_settled"  # a callback won the race
    try:
        reply = await payments.daraja.stk_query(checkout)
    except DarajaPending:
        return await _maybe_give_up(payments, current, now) or "pending"
    except DarajaRejected as e:
        log.warning("stk query refused", extra={"checkout_request_id": checkout,
                                                "error": str(e)})
        return await _maybe_give_up(payments, current, now) or "query_error"
    except DarajaError as e:
        # Our credentials or the network, not M-Pesa's answer: never give up on that, or a
        # payment made meanwhile would be marked failed and never asked about again.
        log.error("stk query failed", extra={"checkout_request_id": checkout, "error": str(e)})
        return "query_error"
    code = query_code(reply)
    if code is None:
        return "query_error"
    if code == 0:
        payments.counters["settled_by_query"] += 1
        # The query carries no receipt: the CheckoutRequestID stands in for it.
        return await payments.credit(current, checkout, current["amount_cents"], "stk_query",
                                     None, None, now)
    desc = reply.get("ResultDesc")
    await payments.store.fail_stk_request(checkout, code, desc if isinstance(desc, str) else "",
                                          now)
    payments.on_event(current["meter_no"], "stk", checkout_request_id=checkout, status="failed")
    payments.counters["failed"] += 1
    return "failed"


async def _maybe_give_up(payments, request, now):
    give_up_s = payments.config.settle_give_up_s
    if now - request["created_at"] < give_up_s * 1000:
        return None
    desc = f"timeout: no result from M-Pesa after {int(give_up_s)} s"
    if await payments.store.fail_stk_request(request["checkout_request_id"], GAVE_UP_CODE,
                                             desc, now):
        payments.on_event(request["meter_no"], "stk",
                          checkout_request_id=request["checkout_request_id"], status="failed")
        payments.counters["gave_up"] += 1
    return "gave_up"


async def settle_forever(run_pass, every_s):
    """await run_pass() every `every_s` seconds; a failing pass is logged and the loop carries
    on."""
    while True:
        await asyncio.sleep(every_s)
        try:
            outcomes = await run_pass()
        except Exception:
            log.exception("settle pass failed")
            continue
        if outcomes:
            log.info("settle pass", extra={"outcomes": outcomes})


def leased(store, run_pass, every_s, holder, clock):
    """run_pass, but only while this process holds the store's "settle" lease: every cloud
    instance runs the loop, one at a time queries M-Pesa. The lease outlives a few missed
    passes, so a holder that dies hands over within 3 periods. (The pass is idempotent anyway:
    a credit is once per checkout, a failure only of a pending request.)"""
    ttl_ms = int(every_s * 3000)

    async def run():
        if not await store.acquire_lease("settle", holder, ttl_ms, int(clock() * 1000)):
            return None
        return await run_pass()
    return run


@contextlib.asynccontextmanager
async def running_settler(payments, every_s):
    holder = "%s-%d-%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
    run = leased(payments.store, lambda: settle_pending(payments), every_s, holder,
                 payments.clock)
    task = asyncio.create_task(settle_forever(run, every_s), name="mita-settle")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
