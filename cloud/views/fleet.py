"""What the dashboard asks that the reference API has no call for: who am I (and which meters
are mine), and the operator's fleet table, one page at a time from the store's own query."""

from aiohttp import web

from cloud.auth import require_operator
from cloud.keys import CONFIG, METERS
from cloud.views.common import principal, public_meter, query_int

routes = web.RouteTableDef()
_MAX_CURSOR = 64


@routes.get("/api/me")
async def me(request):
    who = await principal(request)
    meters = [] if who.is_operator else await request.app[METERS].for_user(who.user_id)
    config = request.app[CONFIG]
    return web.json_response({"user_id": who.user_id, "role": who.role,
                              "meters": [public_meter(m) for m in meters],
                              # the paybill a customer pays from the phone's own menu
                              "paybill": config.daraja_shortcode})


@routes.get("/api/fleet")
async def fleet(request):
    """?after=<meter_no>&limit=N&prefix=<start of a meter number>: the next page after a
    cursor; `next` is the following page's cursor, or null on the last page."""
    require_operator(await principal(request))
    after = request.query.get("after", "")[:_MAX_CURSOR] or None
    limit = query_int(request, "limit", 50, 1, 500)
    # typed as the customer would: "dash 00" finds DASH0001 (the canonical form's letters)
    prefix = "".join(c for c in request.query.get("prefix", "") if c.isascii() and c.isalnum())
    meters = await request.app[METERS].page(after, limit, prefix.upper()[:_MAX_CURSOR] or None)
    cursor = meters[-1]["meter_no"] if len(meters) == limit else None
    return web.json_response({"meters": meters, "next": cursor})
