"""The URLs Safaricom calls: STK results and C2B validation/confirmation.

Each checks the secret in the URL (and the optional source allow-list) first, acknowledges only
once the outcome is recorded, and answers 4xx JSON to bodies that are not Daraja notifications.
"""

import hmac
import ipaddress
import logging

from aiohttp import web

from cloud.callbacks import ParseError, parse_c2b, parse_stk_callback
from cloud.errors import BadRequest, CallbackRejected, count, read_json_object
from cloud.keys import CONFIG, PAYMENTS

log = logging.getLogger("mita.daraja")
routes = web.RouteTableDef()
ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


def check_caller(request):
    config = request.app[CONFIG]
    given = request.match_info.get("secret") or request.query.get("secret", "")
    if not hmac.compare_digest(given.encode(), config.callback_secret.encode()):
        # probing, or a URL registered with Daraja under an old secret: either way ops must know
        log.warning("daraja url called without the right secret", extra={
            "remote": request.remote, "path": request.match_info.route.resource.canonical})
        count(request, "callbacks_bad_secret")
        raise CallbackRejected("callback secret missing or wrong")
    if config.callback_allowlist:
        try:
            source = ipaddress.ip_address(request.remote or "")
        except ValueError:
            raise CallbackRejected("callback source address unknown") from None
        if not any(source in net for net in config.callback_allowlist):
            count(request, "callbacks_outside_allowlist")
            log.warning("callback from outside the allow-list", extra={"remote": str(source)})
            raise CallbackRejected("callback source not allowed")


async def _parsed(request, parse, kind):
    """The notification, or a 400. A refused one is logged: it came with the secret and may
    carry real money, and its ids let ops find it in the M-Pesa portal."""
    body = None
    try:
        body = await read_json_object(request)
        return parse(body)
    except (BadRequest, ParseError) as e:
        log.warning("unreadable daraja notification",
                    extra=dict(_ids(body), kind=kind, error=str(e)))
        raise


def _ids(body):
    if not isinstance(body, dict):
        return {}
    envelope = body.get("Body")
    callback = envelope.get("stkCallback") if isinstance(envelope, dict) else None
    found = {"trans_id": body.get("TransID"), "bill_ref": body.get("BillRefNumber"),
             "checkout_request_id": callback.get("CheckoutRequestID")
             if isinstance(callback, dict) else None}
    return {k: str(v)[:64] for k, v in found.items() if v is not None}


async def stk_callback(request):
    check_caller(request)
    result = await _parsed(request, parse_stk_callback, "stk_callback")
    outcome = await request.app[PAYMENTS].apply_stk_result(result)
    log.info("stk callback", extra={"checkout_request_id": result.checkout_request_id,
                                    "result_code": result.result_code, "outcome": outcome})
    return web.json_response(ACCEPTED)


async def c2b_validation(request):
    check_caller(request)
    payment = await _parsed(request, parse_c2b, "c2b_validation")
    code, desc = await request.app[PAYMENTS].validate_c2b(payment)
    return web.json_response({"ResultCode": code, "ResultDesc": desc})


async def c2b_confirmation(request):
    check_caller(request)
    payment = await _parsed(request, parse_c2b, "c2b_confirmation")
    outcome = await request.app[PAYMENTS].confirm_c2b(payment)
    log.info("c2b confirmation", extra={"receipt": payment.trans_id, "outcome": outcome})
    return web.json_response({"ResultCode": 0, "ResultDesc": "Success"})


routes.post("/daraja/callback")(stk_callback)
routes.post("/daraja/callback/{secret}")(stk_callback)
routes.post("/daraja/c2b/validation/{secret}")(c2b_validation)
routes.post("/daraja/c2b/confirmation/{secret}")(c2b_confirmation)
