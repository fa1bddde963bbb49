"""The record and body shapes of the OpenAPI description (cloud/openapi.py), as JSON Schema
2020-12. Records follow cloud/store/base.py; they name the fields a client may rely on and
leave room for more (a store may carry fields this version does not show)."""

from cloud.auth import CUSTOMER, OPERATOR


def ref(name):
    return {"$ref": "#/components/schemas/" + name}


def _obj(required=(), **properties):
    return {"type": "object", "required": list(required), "properties": properties}


def _maybe(kind, **more):
    return dict({"type": [kind, "null"]}, **more)


_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_CENTS = {"type": "integer", "description": "KES cents"}
_MS = _maybe("integer", description="ms since the Unix epoch")
_ROLE = {"type": "string", "enum": [CUSTOMER, OPERATOR]}
_PHONE = {"anyOf": [
    {"type": "string", "pattern": r"^(\+?254|0)?[71][0-9]{8}$"},
    {"type": "integer", "minimum": 254100000000, "maximum": 254199999999},
    {"type": "integer", "minimum": 254700000000, "maximum": 254799999999}],
    "description": "A Kenyan mobile number: 07..., 01..., 2547..., +2547... (spaces and "
                   "dashes inside are dropped), or Daraja's 2547XXXXXXXX as a number"}
# canonical form; spaces, dashes, dots and underscores typed inside are ignored too
_LIST = {"type": ["array", "null"], "items": {"type": "object"}}
# what admin._text takes: at least one character that is not a space
_TEXT = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"}
_METER_NO = {"type": "string", "pattern": "^[A-Za-z0-9]{1,20}$"}
_RECEIPT = {"type": "string", "pattern": "^[A-Za-z0-9]{1,64}$", "description": "M-Pesa's id"}

_METER = _obj(
    ("meter_no", "user_id"), meter_no=_STR, user_id=_STR,
    current_balance_cents=_maybe("integer"), last_update=_MS, created_at=_MS,
    status=_maybe("object", properties={"load_connected": _BOOL, "wifi_status": _STR,
                                        "mqtt_status": _STR, "last_seen": _INT}),
    alerts=_maybe("object"), recharge_seq=_maybe("integer"))

_STK = _obj(
    ("checkout_request_id", "meter_no", "amount_cents", "status"),
    checkout_request_id=_STR, merchant_request_id=_maybe("string"), meter_no=_STR,
    amount_cents=_CENTS, status={"type": "string", "enum": ["pending", "success", "failed"]},
    result_code=_maybe("integer"), result_desc=_maybe("string"), reason=_maybe("string"),
    transaction_id=_maybe("string"), created_at=_MS, settled_at=_MS)

_TRANSACTION = _obj(
    ("id", "transaction_id", "meter_no", "amount_cents"), id=_STR, transaction_id=_STR,
    user_id=_maybe("string"), meter_no=_STR, amount_cents=_CENTS,
    mpesa_receipt=_maybe("string"), phone_number=_maybe("string"), status=_maybe("string"),
    source=_maybe("string"), timestamp=_MS, recharge_seq=_maybe("integer"),
    token=_maybe("string"), token_count=_maybe("integer"))

_USER = _obj(("user_id", "name", "role"), user_id=_STR, name=_STR, email=_maybe("string"),
             role=_ROLE, phone_number=_maybe("string"), created_at=_MS)

_STK_CALLBACK = _obj(("Body",), Body=_obj(("stkCallback",), stkCallback=_obj(
    ("MerchantRequestID", "CheckoutRequestID", "ResultCode", "ResultDesc"),
    MerchantRequestID=_STR, CheckoutRequestID={"type": "string",
                                                "pattern": "^[A-Za-z0-9_-]{1,64}$"}, ResultCode=_INT, ResultDesc=_STR,
    CallbackMetadata=_obj(("Item",), Item={"type": "array", "items": _obj(
        ("Name",), Name=_STR, Value={"type": ["string", "number"]})}))))

_C2B = _obj(
    ("TransID", "TransAmount", "BillRefNumber"), TransactionType=_STR, TransID=_RECEIPT,
    TransTime=_STR, TransAmount={"type": "string", "pattern": r"^[1-9][0-9]{0,5}(\.[0-9]{2})?$",
                                 "description": "KES, e.g. \"100.00\""},
    BusinessShortCode=_STR, BillRefNumber=_STR, InvoiceNumber=_STR, OrgAccountBalance=_STR,
    ThirdPartyTransID=_STR, MSISDN=_STR, FirstName=_STR, MiddleName=_STR, LastName=_STR)

SCHEMAS = {
    "Error": dict(_obj(("error", "message"), error={
        "type": "string", "description": "A stable code (bad_request, unauthorized, ...)"},
        message={"type": "string", "description": "For a person; never a stack trace"}),
        additionalProperties=False),
    "Health": _obj(("status", "timestamp", "uptime"), status={"const": "ok"},
                   timestamp={"type": "string", "format": "date-time"},
                   uptime={"type": "number"}),
    "Meter": _METER,
    "RegisteredMeter": {"allOf": [_METER, _obj(("device_key",), device_key=_STR)],
                        "description": "The meter, its device key and broker login (once)"},
    "NewMeter": _obj(("meter_no", "user_id"), meter_no=_METER_NO, user_id=_STR),
    "MeterRef": _obj(("meter_no",), meter_no=_METER_NO),
    "OperatorToken": _obj(
        ("amount_kes", "reason"), amount_kes={"type": "integer", "minimum": 1},
        reason={"type": "string", "minLength": 1, "maxLength": 200,
                "description": "why the credit is given (kept in the audit record)"},
        request_id={"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$",
                    "description": "the same id again answers the same token, no new credit"}),
    "BalanceReport": _obj(("balance_cents",), balance_cents=dict(
        _CENTS, minimum=-10**11, maximum=10**11)),
    "BalanceReported": _obj(("success", "balance_cents"), success={"const": True},
                            balance_cents=_CENTS),
    "StatusReport": dict(_obj(
        (), load_connected=_maybe("boolean"), wifi_status=_maybe("string", maxLength=32),
        mqtt_status=_maybe("string", maxLength=32)), minProperties=1,
        description="At least one field; text printable only"),
    "Success": _obj(("success",), success={"const": True}),
    "HistoryDay": _obj(("date",), date={"type": "string", "format": "date"},
                       total_consumption_wh=_INT, cost_cents=_INT,
                       readings={"type": "object"}, costs={"type": "object"}),
    "StkPush": _obj(("meter_no", "phone", "amount"), meter_no=_METER_NO, phone=_PHONE,
                    amount={"type": "integer", "minimum": 1, "maximum": 250_000,
                            "description": "Whole KES, within MITA_MIN_AMOUNT_KES.."
                                           "MITA_MAX_AMOUNT_KES (default 1..250,000)"}),
    "StkRequest": _STK,
    "UnmatchedPayment": _obj(("receipt", "amount_cents"), receipt=_STR, amount_cents=_CENTS,
                             source=_maybe("string"), bill_ref=_maybe("string"),
                             reason=_maybe("string")),
    "UnmatchedCredited": _obj(("receipt", "outcome"), receipt=_STR, outcome=_STR),
    "Counters": {"type": "object", "additionalProperties": {"type": "integer"}},
    # an optional field sent as null is taken as absent (cloud/errors.py field())
    "NewUser": _obj(("name",), name=_TEXT, user_id={"anyOf": [_TEXT, {"type": "null"}]},
                    email={"anyOf": [_TEXT, {"type": "null"}]},
                    role={"enum": [CUSTOMER, OPERATOR, None]},
                    phone_number={"anyOf": [_PHONE, {"type": "null"}]}),
    "User": _USER,
    "CreatedUser": {"allOf": [_USER, _obj((), api_key=dict(
        _STR, description="API-key mode only; shown once"))]},
    "Transaction": _TRANSACTION,
    "Tariff": dict(_obj(("version", "bands"), version={"type": "integer", "minimum": 1},
                        effective_from=_INT, utc_offset_min=_INT,
                        bands={"type": "array", "minItems": 1, "items": {"type": "object"}},
                        tou=_LIST, passthrough=_LIST, levies=_LIST, percent_levies=_LIST,
                        vat_bp=_INT),
                   description="As firmware/meter/tariff_config.py accepts it "
                               "(docs/protocol.md)",
                   examples=[{"version": 3, "effective_from": 1764547200, "utc_offset_min": 180,
                              "bands": [{"upto_kwh": 30, "rate": 1200}, {"rate": 2500}],
                              "vat_bp": 1600}]),
    "Me": _obj(("user_id", "role", "meters"), user_id=_STR, role=_ROLE,
               meters={"type": "array", "items": _METER}, paybill=_maybe("string")),
    "FleetPage": _obj(("meters", "next"), meters={"type": "array", "items": _METER},
                      next=_maybe("string")),
    "Ticket": _obj(("ticket", "expires_in"), ticket=_STR, expires_in={"type": "number"}),
    "StkCallback": _STK_CALLBACK,
    "C2bNotification": _C2B,
    "DarajaAck": _obj(("ResultCode", "ResultDesc"), ResultCode={"type": ["integer", "string"]},
                      ResultDesc=_STR),
}
