"""Transaction history: a user's payments and a meter's payments, newest first."""

from aiohttp import web

from cloud.auth import require_meter_access, require_user_access
from cloud.keys import METERS
from cloud.views.common import meter_from_path, principal, query_int
from cloud.views.tokens import token_view

routes = web.RouteTableDef()


def _listing(transactions):
    # The reference API returns {id, ...record} per transaction.
    return [token_view(t) for t in transactions]


# Registered before /{userId} so "meter" is never taken for a user id.
@routes.get("/api/transactions/meter/{meterId}")
async def meter_transactions(request):
    who = await principal(request)
    meter = await meter_from_path(request)
    require_meter_access(who, meter)
    limit = query_int(request, "limit", 50, 1, 500)
    found = await request.app[METERS].transactions_for_meter(meter["meter_no"], limit)
    return web.json_response(_listing(found))


@routes.get("/api/transactions/{userId}")
async def user_transactions(request):
    who = await principal(request)
    user_id = request.match_info["userId"]
    require_user_access(who, user_id)
    limit = query_int(request, "limit", 50, 1, 500)
    found = await request.app[METERS].transactions_for_user(user_id, limit)
    return web.json_response(_listing(found))
