"""The dashboard's live feed as Server-Sent Events: trade the API credentials for a ticket
(POST /api/events/ticket, authenticated like every API call), then open
GET /api/events?ticket=... . A customer's stream carries only their own meters' events; an
operator's carries all. The events are hints to re-read the API (cloud/events.py)."""

import json

from aiohttp import web

from cloud.errors import json_error
from cloud.events import CLOSED
from cloud.keys import EVENTS, METERS, TICKETS
from cloud.views.common import principal

routes = web.RouteTableDef()
_KEEPALIVE_S = 15.0  # under the idle timeouts of common proxies
_RETRY_MS = 1000  # EventSource's own reconnect delay after a dropped stream


@routes.post("/api/events/ticket")
async def ticket(request):
    who = await principal(request)
    tickets = request.app[TICKETS]
    return web.json_response({"ticket": tickets.issue(who), "expires_in": tickets.ttl_s},
                             status=201)


async def _send(response, name, data):
    await response.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode())


@routes.get("/api/events")
async def stream(request):
    who = request.app[TICKETS].redeem(request.query.get("ticket", ""))
    meters = None
    if not who.is_operator:
        meters = [m["meter_no"] for m in await request.app[METERS].for_user(who.user_id)]
    if request.app[EVENTS].closed:
        return json_error(503, "unavailable", "restarting; reconnect shortly")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    hub = request.app[EVENTS]
    sub = hub.subscribe(meters)
    try:
        await response.write(b"retry: %d\n\n" % _RETRY_MS)
        await _send(response, "hello", {"user_id": who.user_id, "role": who.role,
                                        "meters": meters})
        while True:
            event = await sub.next(_KEEPALIVE_S)
            if event is CLOSED:
                break
            if event is False:
                await response.write(b": keep-alive\n\n")
                continue
            await _send(response, "meter", event)
    except ConnectionResetError:
        pass  # the page went away
    finally:
        hub.unsubscribe(sub)
    return response
