"""Parsers for what Safaricom POSTs to us (STK callbacks, C2B validation/confirmation), and the
canonical meter number. They accept any JSON value and return a record or raise ParseError."""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_MAX_ID = 64
_MAX_METER_NO = 20
_MAX_MSISDN = 64
_METER_SEPARATORS = " -_./\t"
_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


class ParseError(ValueError):
    """The body is not a well-formed Daraja notification."""


class InvalidMeterNumber(ValueError):
    """Not something that can name a meter."""


def normalise_meter_no(text):
    """Canonical meter number: upper-case letters and digits only.

    Customers type the paybill account number by hand ("meter 1234-5678", "Meter_12345678"),
    so registration and C2B lookup both go through this one function.
    """
    if not isinstance(text, str):
        raise InvalidMeterNumber("meter number must be a string")
    canonical = "".join(c for c in text if c not in _METER_SEPARATORS).upper()
    if not canonical or len(canonical) > _MAX_METER_NO:
        raise InvalidMeterNumber(f"meter number must be 1..{_MAX_METER_NO} letters/digits")
    if not (canonical.isascii() and canonical.isalnum()):
        raise InvalidMeterNumber("meter number may hold only letters, digits, spaces, dashes")
    return canonical


def amount_to_cents(value, name="amount"):
    """A KES amount (number or numeric string, at most 2 decimals) as integer cents."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ParseError(f"{name} must be a number")
    text = str(value).strip()
    if len(text) > 32:
        raise ParseError(f"{name} is too long")
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(text):
        # Decimal() would also take "1e3", "1_000", "+10" and non-ASCII digits: M-Pesa sends
        # none of those, so they are not amounts.
        raise ParseError(f"{name} is not a plain KES amount: {text!r}")
    try:
        kes = Decimal(text)
        if not kes.is_finite() or not 0 < kes <= 10**10:
            raise ParseError(f"{name} must be a positive KES amount")
        cents = kes * 100
        whole = cents == cents.to_integral_value()
    except (InvalidOperation, ArithmeticError):
        raise ParseError(f"{name} is not a number: {text!r}") from None
    if not whole:
        raise ParseError(f"{name} has a fraction of a cent")
    return int(cents)


def _identifier(value, name):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ParseError(f"{name} must be a string")
    text = str(value).strip()
    if not text or len(text) > _MAX_ID or not text.isprintable():
        raise ParseError(f"{name} must be 1..{_MAX_ID} printable characters")
    return text


def _optional_text(value, limit=64):
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value).strip()
    return text[:limit] if text and text.isprintable() else None


def _result_code(value):
    if isinstance(value, bool):
        raise ParseError("ResultCode must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ParseError("ResultCode must be a number")


@dataclass(frozen=True)
class StkResult:
    checkout_request_id: str
    merchant_request_id: str | None
    result_code: int
    result_desc: str
    amount_cents: int | None = None
    receipt: str | None = None
    phone_number: str | None = None
    transaction_date: str | None = None

    @property
    def paid(self):
        return self.result_code == 0


def _metadata(callback):
    meta = callback.get("CallbackMetadata")
    items = meta.get("Item") if isinstance(meta, dict) else None
    if not isinstance(items, list):
        raise ParseError("a successful callback needs CallbackMetadata.Item")
    values = {}
    for item in items:
        # Items come in any order and Balance carries no Value; skip what we do not use.
        if isinstance(item, dict) and isinstance(item.get("Name"), str) and "Value" in item:
            values.setdefault(item["Name"], item["Value"])
    return values


def parse_stk_callback(body):
    """{"Body": {"stkCallback": {...}}} -> StkResult, or ParseError."""
    envelope = body.get("Body") if isinstance(body, dict) else None
    callback = envelope.get("stkCallback") if isinstance(envelope, dict) else None
    if not isinstance(callback, dict):
        raise ParseError("expected {\"Body\": {\"stkCallback\": {...}}}")
    checkout = _identifier(callback.get("CheckoutRequestID"), "CheckoutRequestID")
    merchant = _optional_text(callback.get("MerchantRequestID"))
    code = _result_code(callback.get("ResultCode"))
    desc = _optional_text(callback.get("ResultDesc"), 200) or ""
    if code != 0:
        return StkResult(checkout, merchant, code, desc)
    values = _metadata(callback)
    if "Amount" not in values or "MpesaReceiptNumber" not in values:
        raise ParseError("a successful callback needs Amount and MpesaReceiptNumber")
    receipt = _identifier(values["MpesaReceiptNumber"], "MpesaReceiptNumber")
    return StkResult(
        checkout, merchant, 0, desc,
        amount_cents=amount_to_cents(values["Amount"], "Amount"),
        receipt=receipt,
        phone_number=_optional_text(values.get("PhoneNumber"), 20),
        transaction_date=_optional_text(values.get("TransactionDate"), 20),
    )


@dataclass(frozen=True)
class C2bPayment:
    trans_id: str
    amount_cents: int
    bill_ref: str
    meter_no: str | None  # None: the account number cannot name any meter
    msisdn: str | None
    trans_time: str | None
    shortcode: str | None
    first_name: str | None


def parse_c2b(body):
    """A C2B validation/confirmation body -> C2bPayment, or ParseError."""
    if not isinstance(body, dict):
        raise ParseError("expected a JSON object")
    trans_id = _identifier(body.get("TransID"), "TransID")
    if "TransAmount" not in body:
        raise ParseError("TransAmount is missing")
    amount = amount_to_cents(body.get("TransAmount"), "TransAmount")
    bill_ref = body.get("BillRefNumber")
    if bill_ref is None:
        bill_ref = ""
    if not isinstance(bill_ref, (str, int)) or isinstance(bill_ref, bool):
        raise ParseError("BillRefNumber must be a string")
    bill_ref = str(bill_ref)[:100]
    try:
        meter_no = normalise_meter_no(bill_ref)
    except InvalidMeterNumber:
        meter_no = None
    return C2bPayment(
        trans_id, amount, bill_ref, meter_no,
        # production confirmations send the payer's number hashed: 64 hex characters, kept
        # whole so an unmatched payment can be traced to its payer for a refund
        msisdn=_optional_text(body.get("MSISDN"), _MAX_MSISDN),
        trans_time=_optional_text(body.get("TransTime"), 20),
        shortcode=_optional_text(body.get("BusinessShortCode"), 12),
        first_name=_optional_text(body.get("FirstName"), 40),
    )
