"""Operator endpoints: customers, and the tariff every meter bills by."""

from aiohttp import web

from cloud.auth import CUSTOMER, OPERATOR, require_operator
from cloud.errors import BadRequest, field, read_json_object
from cloud.keys import CONFIG, METERS
from cloud.phone import normalise_msisdn
from cloud.views.common import principal

routes = web.RouteTableDef()
_MAX_TEXT = 200


def _text(body, name, required=False):
    value = field(body, name, str, required=required)
    if value is not None and (not value.strip() or len(value) > _MAX_TEXT
                              or not value.isprintable()):
        raise BadRequest(f"{name} must be 1..{_MAX_TEXT} printable characters")
    return value


@routes.post("/api/users")
async def create_user(request):
    require_operator(await principal(request))
    body = await read_json_object(request)
    role = field(body, "role", str, required=False, default=CUSTOMER)
    if role not in (CUSTOMER, OPERATOR):
        raise BadRequest("role must be customer or operator")
    phone = field(body, "phone_number", (str, int), required=False)
    user = {"user_id": _text(body, "user_id"), "name": _text(body, "name", required=True),
            "email": _text(body, "email"), "role": role,
            "phone_number": normalise_msisdn(phone) if phone is not None else None}
    reply = await request.app[METERS].create_user(
        user, with_api_key=request.app[CONFIG].auth_mode == "apikey")
    return web.json_response(reply, status=201)


@routes.get("/api/tariff")
async def get_tariff(request):
    await principal(request)
    return web.json_response(await request.app[METERS].get_tariff())


@routes.put("/api/tariff")
async def put_tariff(request):
    require_operator(await principal(request))
    return web.json_response(await request.app[METERS].set_tariff(await read_json_object(request)))
