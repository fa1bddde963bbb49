"""The Daraja stand-in's control paths (/sandbox/...), for tests and demos: scripted outcomes,
settle and replay, settings, faults, token revocation, the request log. No auth: never expose
the stand-in publicly. The paths are listed in standins.daraja."""

import urllib.parse

from aiohttp import web

from cloud.daraja import PATH_STK_QUERY
from standins.daraja_state import OUTCOME_NAMES, SANDBOX, parse_outcome
from cloud.phone import InvalidPhone, normalise_msisdn


def add_control_routes(app):
    app.router.add_post("/sandbox/outcome", set_outcome)
    app.router.add_delete("/sandbox/outcome", clear_outcomes)
    app.router.add_post("/sandbox/settle", settle)
    app.router.add_post("/sandbox/replay", replay)
    app.router.add_post("/sandbox/settings", settings)
    app.router.add_post("/sandbox/faults", add_fault)
    app.router.add_post("/sandbox/tokens/revoke", revoke_tokens)
    app.router.add_get("/sandbox/requests", show_requests)
    app.router.add_post("/sandbox/reset", reset)


async def _control_json(request):
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}',
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}',
                                 content_type="application/json")
    return body


def _control_error(message):
    return web.json_response({"error": message}, status=400)


async def set_outcome(request):
    body = await _control_json(request)
    rule = {"outcome": body.get("outcome", "success")}
    try:
        parse_outcome(rule["outcome"])
        if body.get("phone") is not None:
            rule["phone"] = normalise_msisdn(body["phone"])
        if body.get("amount") is not None:
            rule["amount"] = int(body["amount"])
        for key in ("deliver_times", "delay_s"):
            if body.get(key) is not None:
                rule[key] = float(body[key]) if key == "delay_s" else int(body[key])
    except (ValueError, TypeError, InvalidPhone) as error:
        return _control_error(str(error))
    rule["once"] = bool(body.get("once", False))
    rule["hold"] = bool(body.get("hold", False))
    request.app[SANDBOX].rules.append(rule)
    return web.json_response({"rule": rule, "outcomes": sorted(OUTCOME_NAMES)})


async def clear_outcomes(request):
    request.app[SANDBOX].rules.clear()
    return web.json_response({"rules": []})


async def replay(request):
    body = await _control_json(request)
    sandbox = request.app[SANDBOX]
    record = sandbox.stk.get(str(body.get("CheckoutRequestID", "")))
    if record is None or record.get("callback_text") is None:
        return _control_error("no settled STK request with that CheckoutRequestID")
    try:
        times = max(1, int(body.get("times", 1)))
    except (TypeError, ValueError):
        return _control_error("times must be a whole number")
    deliveries = [await sandbox.deliver_stk_callback(record) for _ in range(times)]
    return web.json_response({"deliveries": deliveries})


async def settle(request):
    body = await _control_json(request)
    record = request.app[SANDBOX].stk.get(str(body.get("CheckoutRequestID", "")))
    if record is None:
        return _control_error("no STK request with that CheckoutRequestID")
    if record["status"] != "pending":
        return _control_error("that STK request is already settled")
    deliveries = await request.app[SANDBOX].settle_stk(record)
    return web.json_response({"deliveries": deliveries})


async def settings(request):
    body = await _control_json(request)
    try:
        changed = request.app[SANDBOX].update_settings(body)
    except (ValueError, TypeError) as error:
        return _control_error(str(error))
    return web.json_response({"settings": changed})


async def add_fault(request):
    body = await _control_json(request)
    if not str(body.get("path", "")).startswith("/"):
        return _control_error("fault needs a path such as %s" % PATH_STK_QUERY)
    try:
        fault = dict(body, count=int(body.get("count", 1)),
                     hang_s=float(body.get("hang_s") or 0), status=int(body.get("status") or 0))
    except (TypeError, ValueError):
        return _control_error("count, status and hang_s must be numbers")
    request.app[SANDBOX].faults.append(fault)
    return web.json_response({"faults": request.app[SANDBOX].faults})


async def revoke_tokens(request):
    request.app[SANDBOX].tokens.clear()
    return web.json_response({"revoked": True})


async def show_requests(request):
    return web.json_response(redacted(request.app[SANDBOX].snapshot(request.query.get("path"))))


# Fields that carry a secret: the STK password (passkey-derived) and the URLs Daraja calls,
# whose path or query holds the cloud's callback secret. Any local process can read this view
# (in embedded mode the stand-in runs inside the cloud), so it shows only where they point.
_SECRET_FIELDS = {"Password", "SecurityCredential"}
_URL_FIELDS = {"CallBackURL", "ConfirmationURL", "ValidationURL", "ResultURL",
               "QueueTimeOutURL", "url"}


def redacted(value):
    """The snapshot with the STK password and the secret parts of callback URLs hidden."""
    if isinstance(value, list):
        return [redacted(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in _SECRET_FIELDS and item:
            out[key] = "<redacted>"
        elif key in _URL_FIELDS and isinstance(item, str):
            parts = urllib.parse.urlsplit(item)
            out[key] = f"{parts.scheme}://{parts.netloc}/<redacted>" if parts.netloc else item
        else:
            out[key] = redacted(item)
    return out


async def reset(request):
    request.app[SANDBOX].reset()
    return web.json_response({"reset": True})
