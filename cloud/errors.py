"""Every failure leaves the service as JSON {error, message} with a 4xx/5xx status; never a
traceback. Domain exceptions map to statuses here, so views stay thin."""

import json
import logging

from aiohttp import web

from cloud.abuse import TooManyAttempts
from cloud.auth import AuthError, Forbidden
from cloud.keys import ABUSE, CONFIG
from cloud.callbacks import InvalidMeterNumber, ParseError
from cloud.operator_tokens import InvalidReason, TokenUnavailable
from cloud.payments import (ConfirmationUnavailable, GatewayError, InvalidAmount, NotConfirmed,
                            UnknownMeter)
from cloud.phone import InvalidPhone
from cloud.push_guard import PromptAlreadyWaiting, TooManyPushes
from cloud.store.base import Conflict, InvalidRecord, NotFound, StoreError
from cloud.tariff import InvalidTariff

log = logging.getLogger("mita.http")


class BadRequest(Exception):
    """The request body or query is not what the endpoint expects."""


class CallbackRejected(Exception):
    """A Daraja URL was called without the right secret or from outside the allow-list."""


# (exception class, HTTP status, error code); the first match wins.
_MAPPING = (
    (BadRequest, 400, "bad_request"),
    (ParseError, 400, "bad_request"),
    (InvalidPhone, 400, "invalid_phone"),
    (InvalidAmount, 400, "invalid_amount"),
    (InvalidReason, 400, "invalid_reason"),
    (InvalidMeterNumber, 400, "invalid_meter_no"),
    (InvalidRecord, 400, "bad_request"),
    (InvalidTariff, 400, "invalid_tariff"),
    (AuthError, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (CallbackRejected, 403, "forbidden"),
    (UnknownMeter, 404, "meter_not_found"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (NotConfirmed, 409, "not_confirmed"),
    (TokenUnavailable, 409, "token_unavailable"),
    (PromptAlreadyWaiting, 409, "prompt_already_waiting"),
    (TooManyPushes, 429, "too_many_requests"),
    (TooManyAttempts, 429, "too_many_requests"),
    # Not recorded, so not acknowledged: Daraja re-sends, and a re-send is safe.
    (StoreError, 503, "store_unavailable"),
    (ConfirmationUnavailable, 503, "gateway_unavailable"),
)


def json_error(status, error, message, headers=None):
    return web.json_response({"error": error, "message": message}, status=status,
                             headers=headers)


def _http_error_code(exc):
    return {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
            415: "unsupported_media_type"}.get(exc.status, "http_error")


@web.middleware
async def error_middleware(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.status != 413 else "request body too large"
        if exc.status == 413:
            count(request, "bodies_too_large")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_error(exc.status, _http_error_code(exc), message, headers)
    except GatewayError as exc:
        status = 504 if exc.timeout else 502
        return json_error(status, "payment_gateway", str(exc))
    except Exception as exc:
        for cls, status, code in _MAPPING:
            if isinstance(exc, cls):
                # a limit that refused says when to come back (RFC 9110 Retry-After, seconds)
                wait = getattr(exc, "retry_after_s", None)
                return json_error(status, code, _public_message(request, exc, code),
                                  {"Retry-After": str(wait)} if wait else None)
        log.exception("unhandled error", extra={"method": request.method,
                                                "path": loggable_path(request)})
        return json_error(500, "internal", "internal server error")


def _public_message(request, exc, code):
    """The message a caller sees. A bare backend failure names files, hosts or SQL: that goes
    to the log for the operator, the caller only learns to try again."""
    if type(exc) is StoreError:
        log.warning("store unavailable", extra={"method": request.method,
                                                "path": loggable_path(request), "error": str(exc)})
        return "the record store is unavailable; try again"
    return str(exc) or code


def loggable_path(request):
    """The route template, or for a path no route matched the path with the callback secret
    cut out: Daraja paths carry it, and a URL registered with a typo (a trailing slash) must
    not print it into every log line."""
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    secret = request.app[CONFIG].callback_secret if CONFIG in request.app else ""
    path = request.path.replace(secret, "<secret>") if secret else request.path
    # %0A in a URL must not start a forged line in the log
    return "".join(c if c.isprintable() else "?" for c in path[:200])



def count(request, name):
    """One more of the HTTP layer's refusals (cloud/abuse.py), when the app keeps counts."""
    guard = request.app.get(ABUSE)
    if guard is not None:
        guard.counters[name] += 1


_MAX_JSON_DEPTH = 32  # Daraja's deepest body is 5 levels; nothing we read needs more


def _depth(value):
    """How deeply objects and lists nest (a flat object: 1), a level at a time and stopping
    past the cap: it runs on every request's body, so one type check per value."""
    level, layer = 0, [value]
    while level <= _MAX_JSON_DEPTH:
        below, containers = [], 0
        for node in layer:
            kind = type(node)  # json.loads makes exactly dict and list
            if kind is dict:
                below.extend(node.values())
            elif kind is list:
                below.extend(node)
            else:
                continue
            containers += 1
        if not containers:
            return level
        level += 1
        layer = below
    return level


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


async def read_json_object(request):
    """The body as a JSON object, or BadRequest. Oversized bodies raise 413 from aiohttp."""
    raw = await request.read()
    too_deep = False
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        body, too_deep = None, True  # nested past what the parser can hold: too deep by far
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body is not valid JSON") from None
    if too_deep or _depth(body) > _MAX_JSON_DEPTH:
        count(request, "json_too_deep")
        raise BadRequest(f"JSON nested deeper than {_MAX_JSON_DEPTH} levels")
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def field(body, name, kind, required=True, default=None):
    """body[name] checked against a type (bool is never an int here)."""
    if name not in body or body[name] is None:
        if required:
            raise BadRequest(f"missing field {name!r}")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
        raise BadRequest(f"field {name!r} must be {names}")
    return value


_JSON_NAMES = {str: "a string", int: "a whole number", bool: "true/false", dict: "an object",
               list: "a list"}
