"""HTTP views, thin: parse the request, call the domain, shape the reply."""

import datetime
import time

from aiohttp import web

from cloud.views import (admin, daraja, events, fleet, meters, openapi, payments, tokens,
                         transactions)
from cloud.views.dashboard import setup_dashboard
from cloud.keys import STARTED_AT

health_routes = web.RouteTableDef()


@health_routes.get("/health")
async def health(request):
    return web.json_response({
        "status": "ok",
        # The reference's Date.toISOString(): UTC, milliseconds, "Z".
        "timestamp": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "uptime": round(time.monotonic() - request.app[STARTED_AT], 3),
    })


def setup_routes(app):
    for table in (health_routes, transactions.routes, payments.routes, meters.routes,
                  admin.routes, daraja.routes, events.routes, fleet.routes, tokens.routes,
                  openapi.routes):
        app.router.add_routes(table)
    setup_dashboard(app)
