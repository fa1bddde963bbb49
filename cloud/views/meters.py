"""Meter endpoints: details for owners and operators, telemetry from the meter itself,
registration by operators, consumption history."""

import datetime
import time

from aiohttp import web

from cloud.auth import require_meter_access, require_operator
from cloud.callbacks import normalise_meter_no
from cloud.errors import BadRequest, field, read_json_object
from cloud.keys import ABUSE, METER_AUTH, METERS
from cloud.views.common import meter_from_path, principal, public_meter

routes = web.RouteTableDef()
_STATUS_FIELDS = {"load_connected": bool, "wifi_status": str, "mqtt_status": str}
_MAX_BALANCE_CENTS = 10**11
_MAX_HISTORY_DAYS = 366
_EAT = datetime.timezone(datetime.timedelta(hours=3))


@routes.get("/api/meters/{meterId}")
async def get_meter(request):
    who = await principal(request)
    meter = await meter_from_path(request)
    require_meter_access(who, meter)
    return web.json_response(public_meter(meter))


async def _signed_body(request):
    """(meter_no, body) once the meter's signature over the body has been checked. The meter
    is looked up only after that: an unsigned caller learns nothing about which meters exist
    (an unknown one is the same 401 as a bad signature)."""
    meter_no = normalise_meter_no(request.match_info["meterId"])
    raw = await request.read()

    def attempt():
        return request.app[METER_AUTH].verify(meter_no, request.method, request.raw_path,
                                              request.headers, raw)
    # a wrong signature is a failed sign-in: guessing device keys locks the client out too
    await request.app[ABUSE].authenticate(request.remote, attempt)
    return meter_no, await read_json_object(request)


@routes.post("/api/meters/{meterId}/balance")
async def report_balance(request):
    meter_no, body = await _signed_body(request)
    # Telemetry only: the meter reports what it holds; credit comes from payments alone.
    balance = field(body, "balance_cents", int)
    if abs(balance) > _MAX_BALANCE_CENTS:
        raise BadRequest("balance_cents is out of range")
    now = int(time.time() * 1000)
    await request.app[METERS].report_balance(meter_no, balance, now)
    return web.json_response({"success": True, "balance_cents": balance})


@routes.post("/api/meters/{meterId}/status")
async def report_status(request):
    meter_no, body = await _signed_body(request)
    status = {}
    for name, kind in _STATUS_FIELDS.items():
        value = field(body, name, kind, required=False)
        if value is not None:
            if isinstance(value, str) and len(value) > 32:
                raise BadRequest(f"{name} is too long")
            if isinstance(value, str) and not value.isprintable():
                # control and bidi characters (\u0000, \u202e) would forge what the
                # dashboard and the logs show
                raise BadRequest(f"{name} may hold only printable characters")
            status[name] = value
    if not status:
        raise BadRequest("expected at least one of " + ", ".join(_STATUS_FIELDS))
    now = int(time.time() * 1000)
    await request.app[METERS].report_status(meter_no, status, now)
    return web.json_response({"success": True})


@routes.post("/api/meters")
async def register_meter(request):
    require_operator(await principal(request))
    body = await read_json_object(request)
    registered = await request.app[METERS].register(field(body, "meter_no", str),
                                                    field(body, "user_id", str))
    return web.json_response(registered, status=201)


@routes.post("/api/meters/{meterId}/key")
async def rotate_key(request):
    require_operator(await principal(request))
    meter = await meter_from_path(request)
    return web.json_response(await request.app[METERS].rotate_key(meter["meter_no"]))


def _date(text, name):
    try:
        return datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a date YYYY-MM-DD") from None


@routes.get("/api/meters/{meterId}/consumption")
async def consumption(request):
    who = await principal(request)
    meter = await meter_from_path(request)
    require_meter_access(who, meter)
    today = datetime.datetime.now(_EAT).date()  # history days are the meters' local days
    date_to = _date(request.query.get("to", today.isoformat()), "to")
    if "from" in request.query:
        date_from = _date(request.query["from"], "from")
    else:
        # clamped: 29 days before 0001-01-05 would overflow the calendar
        date_from = datetime.date.fromordinal(max(1, date_to.toordinal() - 29))
    if date_from > date_to:
        raise BadRequest("from is after to")
    if (date_to - date_from).days >= _MAX_HISTORY_DAYS:
        raise BadRequest(f"at most {_MAX_HISTORY_DAYS} days at a time")
    days = await request.app[METERS].consumption(meter["meter_no"], date_from.isoformat(),
                                                 date_to.isoformat())
    return web.json_response(days)
