"""A local stand-in for Safaricom's Daraja gateway: same paths and shapes, scripted outcomes.

Run it with `python -m standins.daraja --port 8099`, or build it in-process with
`make_app(config)`. Gateway paths (all as in reference/daraja.md):

  GET  /oauth/v1/generate?grant_type=client_credentials   Basic auth -> token
  POST /mpesa/stkpush/v1/processrequest                   prompt; callback after a delay
  POST /mpesa/stkpushquery/v1/query                       500.001.1001 while pending
  POST /mpesa/c2b/v1/registerurl, /mpesa/c2b/v2/registerurl
  POST /mpesa/c2b/v1/simulate, /mpesa/c2b/v2/simulate     validation (if enabled) + confirmation

Control paths for tests and demos (no auth; never expose the stand-in publicly):

  POST   /sandbox/outcome   {"phone"?, "amount"?, "outcome", "deliver_times"?, "delay_s"?,
                             "once"?, "hold"?}  rule for future STK pushes; the newest
                             matching rule wins, else the configured default. "hold": stay
                             pending until /sandbox/settle. Outcomes: "success", "none"
                             (customer pays, no callback is ever sent; only a query tells),
                             "insufficient" (1), "cancelled" (1032), "unreachable" (1037),
                             "wrong_pin" (2001), or any result code as a number.
  DELETE /sandbox/outcome   forget all rules
  POST   /sandbox/settle    {"CheckoutRequestID"}  settle a pending request now (replies
                            after its callbacks were delivered)
  POST   /sandbox/replay    {"CheckoutRequestID", "times"?}  deliver that callback again now
  POST   /sandbox/settings  change default_outcome, callback_delay_s, deliver_times,
                            shuffle_items, external_validation, token_ttl_s on the fly
  POST   /sandbox/faults    {"path", "count"?, "status"?, "errorCode"?, "errorMessage"?,
                             "hang_s"?}  the next `count` requests to `path` fail or hang
  POST   /sandbox/tokens/revoke   every issued token becomes stale (404.001.03)
  GET    /sandbox/requests  what came in and what was called back (optional ?path=)
  POST   /sandbox/reset     forget rules, faults, logs and requests
"""

import argparse
import asyncio
import logging
import re
from datetime import datetime

from aiohttp import web

from cloud.daraja import (EAT, PATH_OAUTH, PATH_STK_PUSH, PATH_STK_QUERY, eat_timestamp,
                          stk_password)
from standins.daraja_control import add_control_routes
from standins.daraja_state import (C2B_SIMULATE_PATHS, OUTCOME_NAMES, SANDBOX, Sandbox,
                                        SandboxConfig, SandboxError, gateway_error,
                                        parse_outcome)

__all__ = ["SandboxConfig", "make_app", "main", "SANDBOX"]

_C2B_REGISTER_PATHS = ("/mpesa/c2b/v1/registerurl", "/mpesa/c2b/v2/registerurl")
_MSISDN = re.compile(r"254[71][0-9]{8}")
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
_TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")

log = logging.getLogger(__name__)


# -- gateway: auth --------------------------------------------------------------------------

async def oauth(request):
    sandbox = request.app[SANDBOX]
    if request.query.get("grant_type") != "client_credentials":
        return gateway_error(400, "400.008.02", "Invalid grant type passed")
    if not sandbox.basic_auth_ok(request.headers.get("Authorization", "")):
        return gateway_error(400, "400.008.01", "Invalid Authentication passed")
    token, ttl = sandbox.issue_token()
    return web.json_response({"access_token": token, "expires_in": str(ttl)})


async def _authorised_json(request):
    """The JSON body of a gateway call with a live Bearer token, or raise the gateway's reply."""
    sandbox = request.app[SANDBOX]
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not sandbox.token_live(header[len("Bearer "):]):
        raise SandboxError(404, "404.001.03", "Invalid Access Token")
    try:
        body = await request.json()
    except ValueError:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid JSON") from None
    if not isinstance(body, dict):
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid JSON")
    return body


def _check_stk_credentials(sandbox, body):
    if str(body.get("BusinessShortCode", "")) != sandbox.config.shortcode:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
    ts = str(body.get("Timestamp", ""))
    try:
        moment = datetime.strptime(ts, "%Y%m%d%H%M%S").replace(tzinfo=EAT)
    except ValueError:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid Timestamp") from None
    if len(ts) != 14 or abs(moment.timestamp() - sandbox.clock()) > \
            sandbox.config.timestamp_tolerance_s:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid Timestamp")
    expected = stk_password(sandbox.config.shortcode, sandbox.config.passkey, ts)
    if body.get("Password") != expected:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid Password")


def _whole_amount(value, low, high):
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None


# -- gateway: STK ---------------------------------------------------------------------------

async def stk_push(request):
    sandbox = request.app[SANDBOX]
    body = await _authorised_json(request)
    _check_stk_credentials(sandbox, body)
    if body.get("TransactionType") not in _TRANSACTION_TYPES:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid TransactionType")
    amount = _whole_amount(body.get("Amount"), 1, 250_000)
    if amount is None:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid Amount")
    for field in ("PartyA", "PhoneNumber"):
        if not _MSISDN.fullmatch(str(body.get(field, ""))):
            raise SandboxError(400, "400.002.02", "Bad Request - Invalid %s" % field)
    if not str(body.get("PartyB", "")).isdigit():
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid PartyB")
    if not _URL.fullmatch(str(body.get("CallBackURL", ""))):
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid CallBackURL")
    account_ref = body.get("AccountReference")
    if not isinstance(account_ref, str) or not 1 <= len(account_ref) <= 12:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid AccountReference")
    description = body.get("TransactionDesc")
    if not isinstance(description, str) or not 1 <= len(description) <= 13:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid TransactionDesc")
    record = sandbox.start_stk(str(body["PhoneNumber"]), amount, account_ref,
                               body["CallBackURL"])
    return web.json_response({
        "MerchantRequestID": record["MerchantRequestID"],
        "CheckoutRequestID": record["CheckoutRequestID"],
        "ResponseCode": "0",
        "ResponseDescription": "Success. Request accepted for processing",
        "CustomerMessage": "Success. Request accepted for processing",
    })


async def stk_query(request):
    sandbox = request.app[SANDBOX]
    body = await _authorised_json(request)
    _check_stk_credentials(sandbox, body)
    record = sandbox.stk.get(str(body.get("CheckoutRequestID", "")))
    if record is None:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid CheckoutRequestID")
    if record["status"] == "pending":
        raise SandboxError(500, "500.001.1001", "The transaction is being processed")
    return web.json_response({
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successfully",
        "MerchantRequestID": record["MerchantRequestID"],
        "CheckoutRequestID": record["CheckoutRequestID"],
        "ResultCode": str(record["ResultCode"]),
        "ResultDesc": record["ResultDesc"],
    })


# -- gateway: C2B ---------------------------------------------------------------------------

async def c2b_register(request):
    sandbox = request.app[SANDBOX]
    body = await _authorised_json(request)
    shortcode = str(body.get("ShortCode", ""))
    if shortcode not in (sandbox.config.c2b_shortcode, sandbox.config.shortcode):
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid ShortCode")
    if body.get("ResponseType") not in ("Completed", "Cancelled"):
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid ResponseType")
    for field in ("ConfirmationURL", "ValidationURL"):
        if not _URL.fullmatch(str(body.get(field, ""))):
            raise SandboxError(400, "400.002.02", "Bad Request - Invalid %s" % field)
    version = "v1" if request.path.startswith("/mpesa/c2b/v1/") else "v2"
    sandbox.c2b_urls[shortcode] = {
        "ConfirmationURL": body["ConfirmationURL"], "ValidationURL": body["ValidationURL"],
        "ResponseType": body["ResponseType"], "version": version}
    return web.json_response({"OriginatorCoversationID": sandbox.new_conversation_id(),
                              "ResponseCode": "0", "ResponseDescription": "Success"})


async def c2b_simulate(request):
    sandbox = request.app[SANDBOX]
    body = await _authorised_json(request)
    shortcode = str(body.get("ShortCode", ""))
    if shortcode not in sandbox.c2b_urls:
        raise SandboxError(400, "400.002.02", "Bad Request - No URLs registered for ShortCode")
    if body.get("CommandID") not in _TRANSACTION_TYPES:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid CommandID")
    amount = _whole_amount(body.get("Amount"), 1, 250_000)
    if amount is None:
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid Amount")
    if not _MSISDN.fullmatch(str(body.get("Msisdn", ""))):
        raise SandboxError(400, "400.002.02", "Bad Request - Invalid Msisdn")
    sandbox.start_c2b(shortcode, body["CommandID"], amount, str(body["Msisdn"]),
                      str(body.get("BillRefNumber", "")))
    return web.json_response({"OriginatorCoversationID": sandbox.new_conversation_id(),
                              "ResponseCode": "0",
                              "ResponseDescription": "Accept the service request successfully."})


# -- the app --------------------------------------------------------------------------------

@web.middleware
async def _gateway_middleware(request, handler):
    """Log gateway calls, inject scripted faults and turn SandboxError into gateway replies."""
    if request.path.startswith("/sandbox/"):
        return await handler(request)
    sandbox = request.app[SANDBOX]
    text = (await request.read()).decode("utf-8", "replace")
    entry = sandbox.log_request(request.method, request.path, dict(request.query), text)
    try:
        response = await sandbox.apply_fault(request.path)
        if response is None:
            response = await handler(request)
    except SandboxError as error:
        response = gateway_error(error.status, error.code, error.message)
    except web.HTTPException as error:
        entry["status"] = error.status
        raise
    entry["status"] = response.status
    return response


async def _lifecycle(app):
    sandbox = app[SANDBOX]
    await sandbox.open()
    yield
    await sandbox.close()


async def _on_shutdown(app):
    # Runs before the server waits for in-flight handlers: let scripted hangs go first.
    app[SANDBOX].release_hangs()


def make_app(config=None):
    """The stand-in as an aiohttp application; `config` is a SandboxConfig, a dict or None."""
    if config is None:
        config = SandboxConfig()
    elif not isinstance(config, SandboxConfig):
        config = SandboxConfig.from_mapping(config)
    app = web.Application(middlewares=[_gateway_middleware])
    app[SANDBOX] = Sandbox(config)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get(PATH_OAUTH, oauth)
    app.router.add_post(PATH_STK_PUSH, stk_push)
    app.router.add_post(PATH_STK_QUERY, stk_query)
    for path in _C2B_REGISTER_PATHS:
        app.router.add_post(path, c2b_register)
    for path in C2B_SIMULATE_PATHS:
        app.router.add_post(path, c2b_simulate)
    add_control_routes(app)
    return app


def main(argv=None):
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(prog="python -m standins.daraja",
                                     description="Local stand-in for the M-Pesa Daraja API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--consumer-key", default=defaults.consumer_key)
    parser.add_argument("--consumer-secret", default=defaults.consumer_secret)
    parser.add_argument("--shortcode", default=defaults.shortcode)
    parser.add_argument("--passkey", default=defaults.passkey)
    parser.add_argument("--c2b-shortcode", default=defaults.c2b_shortcode)
    parser.add_argument("--outcome", default=defaults.default_outcome,
                        help="default STK outcome: %s or a result code"
                        % ", ".join(sorted(OUTCOME_NAMES)))
    parser.add_argument("--callback-delay", type=float, default=defaults.callback_delay_s)
    parser.add_argument("--deliver-times", type=int, default=defaults.deliver_times)
    parser.add_argument("--shuffle-items", action="store_true")
    parser.add_argument("--external-validation", action="store_true")
    parser.add_argument("--token-ttl", type=int, default=defaults.token_ttl_s)
    args = parser.parse_args(argv)
    try:
        parse_outcome(args.outcome)
    except ValueError as error:
        parser.error(str(error))
    config = SandboxConfig(
        consumer_key=args.consumer_key, consumer_secret=args.consumer_secret,
        shortcode=args.shortcode, passkey=args.passkey, c2b_shortcode=args.c2b_shortcode,
        default_outcome=args.outcome, callback_delay_s=args.callback_delay,
        deliver_times=args.deliver_times, shuffle_items=args.shuffle_items,
        external_validation=args.external_validation, token_ttl_s=args.token_ttl)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log.info("daraja sandbox on http://%s:%d (EAT now %s)", args.host, args.port,
             eat_timestamp())
    web.run_app(make_app(config), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
