"""Starting STK pushes and asking how they went."""

from aiohttp import web

from cloud.auth import require_meter_access, require_operator
from cloud.errors import field, read_json_object
from cloud.payments import failure_reason
from cloud.phone import normalise_msisdn
from cloud.stk_desk import list_stk_requests
from cloud.unmatched import credit_unmatched, list_unmatched
from cloud.views.common import principal, query_int
from cloud.keys import ABUSE, LINK, PAYMENTS

routes = web.RouteTableDef()


def _stk_view(request):
    return {
        "checkout_request_id": request["checkout_request_id"],
        "merchant_request_id": request.get("merchant_request_id"),
        "meter_no": request["meter_no"],
        "amount_cents": request["amount_cents"],
        "status": request["status"],
        "result_code": request.get("result_code"),
        "result_desc": request.get("result_desc"),
        "reason": failure_reason(request.get("result_code")),
        "transaction_id": request.get("transaction_id"),
        "created_at": request.get("created_at"),
        "settled_at": request.get("settled_at"),
    }


@routes.post("/api/payments/stkpush")
async def stk_push(request):
    who = await principal(request)
    body = await read_json_object(request)
    payments = request.app[PAYMENTS]
    meter_no = field(body, "meter_no", str)
    phone = field(body, "phone", (str, int))
    amount = field(body, "amount", int)
    payments.check_amount_kes(amount)
    meter = await payments.find_meter(meter_no)
    require_meter_access(who, meter)
    stored = await payments.guarded_stk_push(who, meter, normalise_msisdn(phone), amount)
    return web.json_response(_stk_view(stored), status=201)


@routes.get("/api/payments/stk")
async def stk_list(request):
    """Operators: ?status=pending|failed|success&limit=N, newest first."""
    require_operator(await principal(request))
    limit = query_int(request, "limit", 50, 1, 500)
    found = await list_stk_requests(request.app[PAYMENTS], request.query.get("status", "pending"),
                                    limit)
    return web.json_response([_stk_view(r) for r in found])


@routes.get("/api/payments/stk/{checkoutRequestId}")
async def stk_status(request):
    who = await principal(request)
    stk = await request.app[PAYMENTS].stk_status(request.match_info["checkoutRequestId"])
    require_meter_access(who, stk)
    return web.json_response(_stk_view(stk))


@routes.get("/api/payments/unmatched")
async def unmatched_list(request):
    """Operators: money M-Pesa took that names no meter (to credit by hand or refund)."""
    require_operator(await principal(request))
    limit = query_int(request, "limit", 500, 1, 5000)
    return web.json_response(await list_unmatched(request.app[PAYMENTS], limit))


@routes.post("/api/payments/unmatched/{receipt}/credit")
async def unmatched_credit(request):
    require_operator(await principal(request))
    body = await read_json_object(request)
    receipt = request.match_info["receipt"]
    outcome = await credit_unmatched(request.app[PAYMENTS], receipt,
                                     field(body, "meter_no", str))
    return web.json_response({"receipt": receipt, "outcome": outcome})


@routes.get("/api/payments/counters")
async def counters(request):
    """Operators: what this process has seen since it started (duplicates, unknown callbacks,
    amount mismatches, unconfirmed successes, dropped recharge offers, ...), and its
    link's (cloud.link.service.Link.counters: with several instances on one broker, each has
    its own)."""
    require_operator(await principal(request))
    counters = dict(request.app[PAYMENTS].counters, **request.app[ABUSE].counters)
    counters.update(request.app[LINK].counters())
    return web.json_response(counters)
