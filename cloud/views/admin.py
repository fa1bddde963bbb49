"""Operator endpoints: customers, and the tariff every meter bills by."""

from aiohttp import web

from cloud.auth import CUSTOMER, OPERATOR, hash_key, new_secret, require_operator
from cloud.errors import BadRequest, field, read_json_object
from cloud.phone import normalise_msisdn
from cloud.store.base import NotFound
from cloud.tariff import validate_tariff
from cloud.views.common import principal
from cloud.views.keys import CONFIG, STORE

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
    store = request.app[STORE]
    created = await store.create_user(user)
    reply = dict(created)
    if request.app[CONFIG].auth_mode == "apikey":
        # Shown once; only its hash is kept.
        api_key = new_secret("mk_")
        await store.set_user_api_key_hash(created["user_id"], hash_key(api_key))
        reply["api_key"] = api_key
    return web.json_response(reply, status=201)


@routes.get("/api/tariff")
async def get_tariff(request):
    await principal(request)
    tariff = await request.app[STORE].get_tariff()
    if tariff is None:
        raise NotFound("no tariff set yet")
    return web.json_response(tariff)


@routes.put("/api/tariff")
async def put_tariff(request):
    require_operator(await principal(request))
    # The stored tariff is what meters receive (docs/protocol.md): validated by their rules.
    tariff = validate_tariff(await read_json_object(request))
    stored = await request.app[STORE].set_tariff(tariff)
    return web.json_response(stored or tariff)
