"""GET /api/openapi.json: the API's description (cloud/openapi.py), open to anyone, as a
client generator or a fuzzer needs it before it has credentials."""

from aiohttp import web

from cloud.openapi import build_description

routes = web.RouteTableDef()


@routes.get("/api/openapi.json")
async def description(request):
    return web.json_response(build_description())
