"""The HTTP API's OpenAPI 3.1 description, built here in Python rather than kept as a YAML
file: the header names, limits and enumerations come from the modules that enforce them, so
the description cannot drift from the code on those, and tests/test_openapi.py keeps its
paths equal to the app's routes. Shapes of the records are in cloud/openapi_schemas.py."""

from cloud.auth import METER_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from cloud.openapi_schemas import SCHEMAS, ref
from cloud.stk_desk import STATUSES

_JSON = "application/json"
_ERRORS = {
    400: ("BadRequest", "The body, a parameter or a field is not what the operation takes "
                        "(`bad_request`, `invalid_phone`, `invalid_amount`, "
                        "`invalid_meter_no`, `invalid_tariff`)."),
    401: ("Unauthorized", "No valid credentials (`unauthorized`)."),
    403: ("Forbidden", "Valid credentials, not for this resource, or a Daraja URL without "
                       "the callback secret or from outside the allow-list (`forbidden`)."),
    404: ("NotFound", "No such meter, user, request or payment (`not_found`, "
                      "`meter_not_found`)."),
    409: ("Conflict", "The record exists already or the state forbids it (`conflict`, "
                      "`not_confirmed`, `prompt_already_waiting`)."),
    413: ("PayloadTooLarge", "The body is over MITA_MAX_BODY_BYTES (`payload_too_large`)."),
    429: ("TooManyRequests", "A limit refused it (`too_many_requests`); `Retry-After` says "
                             "when to come back."),
    502: ("GatewayError", "M-Pesa (Daraja) refused or failed (`payment_gateway`)."),
    503: ("Unavailable", "The store or M-Pesa's confirmation is unavailable; nothing was "
                        "recorded, try again (`store_unavailable`, `gateway_unavailable`)."),
    504: ("GatewayTimeout", "M-Pesa (Daraja) did not answer in time (`payment_gateway`)."),
}
# What every operation can answer: a client locked out after failed sign-ins is refused
# before the operation runs, and any body may be too large.
_ALWAYS = (413, 429)
_USER = [{"bearer": []}]
_METER = [{"meterId": [], "meterTimestamp": [], "meterNonce": [], "meterSignature": []}]


def _error_responses():
    responses = {}
    for status, (name, description) in _ERRORS.items():
        response = {"description": description,
                    "content": {_JSON: {"schema": ref("Error")}}}
        if status == 429:
            response["headers"] = {"Retry-After": {
                "description": "Seconds to wait", "schema": {"type": "string"}}}
        responses[name] = response
    return responses


def _answers(ok_status, ok_schema, *errors, ok_description="Done"):
    """Responses: the success (a schema name, a schema or None for no JSON) and the errors."""
    if isinstance(ok_schema, str):
        ok_schema = ref(ok_schema)
    ok = {"description": ok_description}
    if ok_schema is not None:
        ok["content"] = {_JSON: {"schema": ok_schema}}
    out = {str(ok_status): ok}
    for status in sorted(set(errors) | set(_ALWAYS)):
        out[str(status)] = {"$ref": "#/components/responses/" + _ERRORS[status][0]}
    return out


def _path(name, description, schema=None):
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string"}}


def _query(name, description, schema):
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _limit(default, most):
    return _query("limit", f"At most this many (default {default})",
                  {"type": "integer", "minimum": 1, "maximum": most})


def _body(schema):
    return {"required": True, "content": {_JSON: {"schema": ref(schema)
                                                    if isinstance(schema, str) else schema}}}


def _op(summary, responses, security=None, parameters=None, body=None, tag="api"):
    op = {"summary": summary, "tags": [tag], "responses": responses,
          "security": security if security is not None else _USER}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = _body(body)
    return op


_METER_ID = _path("meterId", "The meter number; letters are upper-cased, and spaces, dashes, "
                             "dots and underscores typed inside are ignored",
                  {"type": "string", "pattern": "^[A-Za-z0-9]{1,20}$"})
_SECRET = _path("secret", "The callback secret (MITA_CALLBACK_SECRET) Daraja was given")
_USER_ERRORS = (400, 401, 403, 404)


def _meter_paths():
    return {
        "/api/meters": {"post": _op(
            "Register a meter for a customer (operators); the device key is shown once",
            _answers(201, "RegisteredMeter", 400, 401, 403, 404, 409), body="NewMeter")},
        "/api/meters/{meterId}": {"get": _op(
            "A meter's details and status (its owner, operators)",
            _answers(200, "Meter", *_USER_ERRORS), parameters=[_METER_ID])},
        "/api/meters/{meterId}/balance": {"post": _op(
            "The meter reports the balance it holds (telemetry; credit comes from payments)",
            _answers(200, "BalanceReported", 400, 401), security=_METER,
            parameters=[_METER_ID], body="BalanceReport", tag="meter")},
        "/api/meters/{meterId}/status": {"post": _op(
            "The meter reports its load relay, WiFi and MQTT state",
            _answers(200, "Success", 400, 401), security=_METER, parameters=[_METER_ID],
            body="StatusReport", tag="meter")},
        "/api/meters/{meterId}/key": {"post": _op(
            "A new device key and broker login for a meter (operators), shown once",
            _answers(200, "RegisteredMeter", *_USER_ERRORS), parameters=[_METER_ID])},
        "/api/meters/{meterId}/tokens": {"post": _op(
            "Issue a token by hand (operators: goodwill credit, a refund), credited once and "
            "audited; 201 with the token, 200 for a retried request_id",
            dict(_answers(201, "Transaction", *(_USER_ERRORS + (409,)),
                          ok_description="Credited: the transaction and its token"),
                 **_answers(200, "Transaction", ok_description="A retried request_id: the "
                            "token it already made, nothing credited again")),
            parameters=[_METER_ID], body="OperatorToken")},
        "/api/meters/{meterId}/consumption": {"get": _op(
            "Daily consumption history, the meter's local (EAT) days; 30 days by default",
            _answers(200, {"type": "array", "items": ref("HistoryDay")}, *_USER_ERRORS),
            parameters=[_METER_ID,
                        _query("from", "First day (default: 29 days before `to`)",
                               {"type": "string", "format": "date"}),
                        _query("to", "Last day (default: today)",
                               {"type": "string", "format": "date"})])},
    }


def _payment_paths():
    listing = {"type": "array", "items": ref("StkRequest")}
    return {
        "/api/payments/stkpush": {"post": _op(
            "Start an M-Pesa STK push for a meter (its owner, operators)",
            _answers(201, "StkRequest", *_USER_ERRORS, 409, 502, 503, 504),
            body="StkPush")},
        "/api/payments/stk": {"get": _op(
            "STK requests by status, newest first (operators)",
            _answers(200, listing, 400, 401, 403),
            parameters=[_query("status", "Which (default pending)",
                               {"type": "string", "enum": list(STATUSES)}), _limit(50, 500)])},
        "/api/payments/stk/{checkoutRequestId}": {"get": _op(
            "How one STK request went (its meter's owner, operators)",
            _answers(200, "StkRequest", *_USER_ERRORS),
            parameters=[_path("checkoutRequestId", "Daraja's CheckoutRequestID")])},
        "/api/payments/unmatched": {"get": _op(
            "Money M-Pesa took that names no meter, to credit by hand or refund (operators)",
            _answers(200, {"type": "array", "items": ref("UnmatchedPayment")}, 400, 401, 403),
            parameters=[_limit(500, 5000)])},
        "/api/payments/unmatched/{receipt}/credit": {"post": _op(
            "Credit an unmatched payment to a meter (operators)",
            _answers(200, "UnmatchedCredited", *_USER_ERRORS, 409, 503),
            parameters=[_path("receipt", "The M-Pesa receipt")], body="MeterRef")},
        "/api/payments/counters": {"get": _op(
            "Payment and abuse counters of this process (operators)",
            _answers(200, "Counters", 401, 403))},
    }


def _user_paths():
    listing = {"type": "array", "items": ref("Transaction")}
    return {
        "/api/users": {"post": _op(
            "Create a customer or operator (operators); in API-key mode the key is shown once",
            _answers(201, "CreatedUser", 400, 401, 403, 409), body="NewUser")},
        "/api/transactions/{userId}": {"get": _op(
            "A user's payments, newest first (that user, operators)",
            _answers(200, listing, 400, 401, 403),
            parameters=[_path("userId", "The user's id"), _limit(50, 500)])},
        "/api/transactions/meter/{meterId}": {"get": _op(
            "A meter's payments, newest first (its owner, operators)",
            _answers(200, listing, *_USER_ERRORS), parameters=[_METER_ID, _limit(50, 500)])},
        "/api/tariff": {
            "get": _op("The tariff every meter bills by (any signed-in user)",
                       _answers(200, "Tariff", 401, 404)),
            "put": _op("Set the tariff (operators); validated by the firmware's own rules",
                       _answers(200, "Tariff", 400, 401, 403, 409), body="Tariff")},
        "/api/me": {"get": _op("Who am I, my meters, and the paybill to pay",
                               _answers(200, "Me", 401))},
        "/api/fleet": {"get": _op(
            "One page of the fleet in meter-number order (operators)",
            _answers(200, "FleetPage", 400, 401, 403),
            parameters=[_query("after", "The previous page's `next`", {"type": "string"}),
                        _query("prefix", "Start of a meter number", {"type": "string"}),
                        _limit(50, 500)])},
    }


def _dashboard_paths():
    return {
        "/api/events/ticket": {"post": _op(
            "Trade the API credentials for a one-use ticket to the event stream",
            _answers(201, "Ticket", 401), tag="dashboard")},
        "/api/events": {"get": _op(
            "The dashboard's live feed (Server-Sent Events: hello, meter, keep-alive)",
            dict(_answers(200, None, 401, 503), **{"200": {
                "description": "An endless event stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}}}),
            security=[], tag="dashboard",
            parameters=[dict(_query("ticket", "From POST /api/events/ticket",
                                    {"type": "string"}), required=True)])},
        "/": {"get": _op("The dashboard's page", {"200": {
            "description": "The page", "content": {"text/html": {
                "schema": {"type": "string"}}}}}, security=[], tag="dashboard")},
    }


def _daraja_paths():
    ack = _answers(200, "DarajaAck", 400, 403, 503)
    stk = _op("STK result from Daraja; acknowledged once recorded", ack, security=[],
              body="StkCallback", tag="daraja")
    by_query = dict(stk, parameters=[dict(_query(
        "secret", "The callback secret, for a URL registered without it in the path",
        {"type": "string"}), required=True)])
    c2b = {"security": [], "tags": ["daraja"], "parameters": [_SECRET],
           "requestBody": _body("C2bNotification"), "responses": ack}
    return {
        "/daraja/callback": {"post": by_query},
        "/daraja/callback/{secret}": {"post": dict(stk, parameters=[_SECRET])},
        "/daraja/c2b/validation/{secret}": {"post": dict(
            c2b, summary="C2B validation: ResultCode 0 accepts, C2B00012 refuses the payment")},
        "/daraja/c2b/confirmation/{secret}": {"post": dict(
            c2b, summary="C2B confirmation: recorded (credited or kept unmatched), then acked")},
    }


def _service_paths():
    return {
        "/health": {"get": _op("Liveness: status, time, uptime", _answers(200, "Health"),
                               security=[], tag="service")},
        "/api/openapi.json": {"get": _op("This description", _answers(200, {"type": "object"}),
                                         security=[], tag="service")},
    }


def _security_schemes():
    def meter_header(name, what):
        return {"type": "apiKey", "in": "header", "name": name, "description": what}
    return {
        "bearer": {"type": "http", "scheme": "bearer", "description":
                   "An API key (embedded mode, `mk_...`, or the operator key) or a Firebase "
                   "ID token (MITA_AUTH=firebase). 10 failures per 5 min lock a client out."},
        "meterId": meter_header(METER_HEADER, "The meter number in the path"),
        "meterTimestamp": meter_header(TIMESTAMP_HEADER,
                                       "Unix seconds, inside the replay window"),
        "meterNonce": meter_header(NONCE_HEADER, "8..64 letters/digits, used once"),
        "meterSignature": meter_header(SIGNATURE_HEADER, (
            "hex HMAC-SHA256 with the device key over METHOD, path with query, timestamp, "
            "nonce and the body's hex sha256, joined by newlines (cloud/auth.py)")),
    }


def build_description():
    """The whole description as a JSON-ready dict (GET /api/openapi.json)."""
    paths = {}
    for part in (_service_paths, _meter_paths, _payment_paths, _user_paths, _dashboard_paths,
                 _daraja_paths):
        paths.update(part())
    return {
        "openapi": "3.1.0",
        "info": {"title": "mita cloud", "version": "1",
                 "description": "Prepaid electricity meters paid with M-Pesa. Money is integer "
                                "cents, energy integer Wh, times integer ms since the epoch. "
                                "Every error is JSON {error, message}."},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "responses": _error_responses(),
                       "securitySchemes": _security_schemes()},
    }
