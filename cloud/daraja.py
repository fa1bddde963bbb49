"""Safaricom Daraja (M-Pesa) client: OAuth token, STK push and query, C2B URL registration.

Retry policy follows what is safe to repeat. An STK push is never repeated automatically: the
first one may have reached the phone even if its reply was lost, and a second prompt could charge
the customer twice. The one exception is an invalid-token reply, which proves the gateway did not
accept the request. STK query only reads, so it is retried with backoff on timeouts and 5xx.
"""

import asyncio
import base64
import json
import logging
import time
from datetime import datetime, timedelta, timezone

import aiohttp

from cloud.phone import normalise_msisdn

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        EAT = ZoneInfo("Africa/Nairobi")
    except ZoneInfoNotFoundError:
        EAT = timezone(timedelta(hours=3), "EAT")
except ImportError:  # pragma: no cover - zoneinfo is in every supported CPython
    EAT = timezone(timedelta(hours=3), "EAT")

SANDBOX_BASE_URL = "https://sandbox.safaricom.co.ke"
PRODUCTION_BASE_URL = "https://api.safaricom.co.ke"
# Safaricom's published sandbox test shortcode and passkey (public, not a secret).
SANDBOX_SHORTCODE = "174379"
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"

PATH_OAUTH = "/oauth/v1/generate"
PATH_STK_PUSH = "/mpesa/stkpush/v1/processrequest"
PATH_STK_QUERY = "/mpesa/stkpushquery/v1/query"
PATH_C2B_REGISTER = "/mpesa/c2b/v2/registerurl"
PATH_C2B_SIMULATE = "/mpesa/c2b/v1/simulate"

INVALID_TOKEN = "404.001.03"
BEING_PROCESSED = "500.001.1001"
BAD_REQUEST = "400.002.02"  # "Bad Request - Invalid Timestamp" and its siblings

MIN_AMOUNT_KES = 1
MAX_AMOUNT_KES = 250_000
ACCOUNT_REF_MAX = 12
DESCRIPTION_MAX = 13

_RENEW_MARGIN_S = 60.0
_TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
_SNIPPET = 200
# 404.001.xx: bad or missing access token/header; 400.008.xx: OAuth credentials or grant type.
_AUTH_CODE_PREFIXES = ("404.001.", "400.008.")

log = logging.getLogger(__name__)


class DarajaError(Exception):
    """Daraja refused or failed a request. `code` is the gateway errorCode or the ResponseCode."""

    def __init__(self, message, code=None, status=None, request_id=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id

    def __str__(self):
        details = []
        if self.code is not None:
            details.append("code %s" % self.code)
        if self.status is not None:
            details.append("HTTP %s" % self.status)
        return "%s (%s)" % (self.message, ", ".join(details)) if details else self.message


class DarajaAuthError(DarajaError):
    """The consumer key/secret were refused, or a fresh token was still called invalid."""


class DarajaPending(DarajaError):
    """STK query: the customer has not answered the prompt yet (500.001.1001)."""


class DarajaTimeout(DarajaError):
    """No reply within the client's timeout; for an STK push the outcome is unknown."""


class DarajaRejected(DarajaError):
    """The gateway refused the request as malformed (4xx, or a non-zero ResponseCode)."""


def eat_timestamp(now=None):
    """The Daraja timestamp "YYYYMMDDHHmmss" in East Africa Time; `now` is an aware datetime
    or Unix seconds (None: the current time)."""
    if now is None:
        now = time.time()
    if isinstance(now, (int, float)):
        moment = datetime.fromtimestamp(now, tz=EAT)
    else:
        if now.tzinfo is None:
            raise ValueError("timestamp needs an aware datetime, not a naive one")
        moment = now.astimezone(EAT)
    return moment.strftime("%Y%m%d%H%M%S")


def stk_password(shortcode, passkey, timestamp):
    """base64(ShortCode + Passkey + Timestamp), the password of STK push and query."""
    raw = "%s%s%s" % (shortcode, passkey, timestamp)
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def _is_zero_code(code):
    # Successful ResponseCodes arrive as "0", 0 or, on some C2B endpoints, "00000000".
    text = str(code).strip()
    return text != "" and text.strip("0") == ""


def _invalid_token_reply(status, body):
    return status == 401 or (isinstance(body, dict) and body.get("errorCode") == INVALID_TOKEN)


def _error_from_reply(status, body, *, pending_allowed=False):
    """The DarajaError a reply stands for, or None when it is a success."""
    if not isinstance(body, dict):
        snippet = str(body)[:_SNIPPET]
        if status >= 400:
            kind = DarajaRejected if status < 500 else DarajaError
            return kind("Daraja replied HTTP %d: %s" % (status, snippet or "empty body"),
                        status=status)
        return DarajaError("Daraja reply is not a JSON object: %s" % snippet, status=status)
    code = body.get("errorCode")
    message = body.get("errorMessage")
    request_id = body.get("requestId")
    if code is not None or status >= 400:
        message = str(message or body.get("ResponseDescription") or "HTTP %d" % status)
        code = code if code is not None else body.get("ResponseCode")
        if _invalid_token_reply(status, body) or str(code).startswith(_AUTH_CODE_PREFIXES):
            return DarajaAuthError(message, code, status, request_id)
        if pending_allowed and code == BEING_PROCESSED:
            return DarajaPending(message, code, status, request_id)
        kind = DarajaRejected if 400 <= status < 500 else DarajaError
        return kind(message, code, status, request_id)
    if "ResponseCode" in body and not _is_zero_code(body["ResponseCode"]):
        message = str(body.get("ResponseDescription") or body.get("CustomerMessage") or "refused")
        return DarajaRejected(message, str(body["ResponseCode"]), status, request_id)
    return None


class DarajaClient:
    """One merchant's Daraja credentials over a shared aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url, consumer_key, consumer_secret,
                 shortcode, passkey, callback_url, c2b_shortcode=None, timeout_s=15, clock=None,
                 *, transaction_type="CustomerPayBillOnline", query_retries=3,
                 retry_backoff_s=0.5, sleep=asyncio.sleep):
        if transaction_type not in _TRANSACTION_TYPES:
            raise ValueError("transaction_type must be one of %s" % ", ".join(_TRANSACTION_TYPES))
        self._session = session
        self.base_url = str(base_url).rstrip("/")
        self._basic = base64.b64encode(
            ("%s:%s" % (consumer_key, consumer_secret)).encode("utf-8")).decode("ascii")
        self.shortcode = str(shortcode)
        self._passkey = passkey
        self.callback_url = callback_url
        self.c2b_shortcode = str(c2b_shortcode) if c2b_shortcode else self.shortcode
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock or time.time
        self.transaction_type = transaction_type
        self.query_retries = query_retries
        self.retry_backoff_s = retry_backoff_s
        self._sleep = sleep
        self._token = None
        self._token_renew_at = 0.0
        self._token_lock = asyncio.Lock()

    # -- auth -----------------------------------------------------------------------------

    async def token(self):
        """A valid access token, fetched once and shared until shortly before it expires."""
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token_renew_at:
                return self._token
            self._token = None
            status, body = await self._send(
                "GET", PATH_OAUTH, params={"grant_type": "client_credentials"},
                headers={"Authorization": "Basic " + self._basic})
            error = _error_from_reply(status, body)
            if error is not None:
                raise DarajaAuthError("OAuth refused: %s" % error.message, error.code,
                                      error.status, error.request_id)
            token, lifetime = self._parse_token(body)
            self._token = token
            self._token_renew_at = self._clock() + lifetime - min(_RENEW_MARGIN_S, lifetime / 2)
            return token

    @staticmethod
    def _parse_token(body):
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise DarajaAuthError("OAuth reply carries no access_token")
        try:
            lifetime = float(body.get("expires_in", ""))  # a string such as "3599"
        except (TypeError, ValueError):
            raise DarajaAuthError("OAuth reply has a bad expires_in: %r"
                                  % (body.get("expires_in"),)) from None
        if not lifetime > 0:
            raise DarajaAuthError("OAuth reply has a non-positive expires_in")
        return token, lifetime

    def _forget_token(self, token):
        # Only the caller holding the stale token drops it; a fresher one stays.
        if self._token == token:
            self._token = None

    # -- the password pieces ---------------------------------------------------------------

    def timestamp(self, now=None):
        """"YYYYMMDDHHmmss" in Africa/Nairobi; `now` as in eat_timestamp, default the clock."""
        return eat_timestamp(self._clock() if now is None else now)

    def password(self, ts):
        return stk_password(self.shortcode, self._passkey, ts)

    # -- the calls -------------------------------------------------------------------------

    async def stk_push(self, phone, amount_kes: int, account_ref, description):
        """Send the payment prompt; returns the accepted reply (CheckoutRequestID, ...).

        ResponseCode "0" only means the prompt went out; the outcome comes by callback/query.
        """
        msisdn = normalise_msisdn(phone)
        amount = _whole_kes(amount_kes)
        account_ref = str(account_ref).strip()[:ACCOUNT_REF_MAX]
        if not account_ref:
            raise ValueError("account_ref is empty; Daraja needs an AccountReference")
        description = str(description).strip()[:DESCRIPTION_MAX] or "Payment"
        ts = self.timestamp()
        body = {
            "BusinessShortCode": self.shortcode,
            "Password": self.password(ts),
            "Timestamp": ts,
            "TransactionType": self.transaction_type,
            "Amount": amount,
            "PartyA": msisdn,
            "PartyB": self.shortcode,
            "PhoneNumber": msisdn,
            "CallBackURL": self.callback_url,
            "AccountReference": account_ref,
            "TransactionDesc": description,
        }
        reply = await self._authorised_post(PATH_STK_PUSH, body)
        if not reply.get("CheckoutRequestID"):
            raise DarajaError("STK push reply carries no CheckoutRequestID")
        return reply

    async def stk_query(self, checkout_request_id):
        """The result of an STK push (ResultCode as a string); DarajaPending while unanswered."""
        if not checkout_request_id:
            raise ValueError("checkout_request_id is empty")
        attempt = 0
        while True:
            ts = self.timestamp()
            body = {"BusinessShortCode": self.shortcode, "Password": self.password(ts),
                    "Timestamp": ts, "CheckoutRequestID": str(checkout_request_id)}
            try:
                return await self._authorised_post(PATH_STK_QUERY, body, pending_allowed=True)
            except (DarajaPending, DarajaAuthError, DarajaRejected):
                raise
            except DarajaError as error:
                if attempt >= self.query_retries:
                    raise
                delay = self.retry_backoff_s * (2 ** attempt)
                attempt += 1
                log.info("daraja stk query retry", extra={
                    "checkout_request_id": checkout_request_id, "attempt": attempt,
                    "error": str(error), "delay_s": delay})
                await self._sleep(delay)

    async def register_c2b_urls(self, confirmation_url, validation_url, response_type="Completed"):
        """Tell M-Pesa where paybill payments to the C2B shortcode are announced."""
        if response_type not in ("Completed", "Cancelled"):
            raise ValueError("response_type must be 'Completed' or 'Cancelled'")
        body = {"ShortCode": self.c2b_shortcode, "ResponseType": response_type,
                "ConfirmationURL": confirmation_url, "ValidationURL": validation_url}
        return await self._authorised_post(PATH_C2B_REGISTER, body)

    async def simulate_c2b(self, amount, msisdn, bill_ref):
        """Sandbox only: pretend a customer paid `amount` KES to the paybill."""
        if self.base_url == PRODUCTION_BASE_URL:
            raise DarajaRejected("C2B simulate does not exist in production")
        body = {"ShortCode": self.c2b_shortcode, "CommandID": "CustomerPayBillOnline",
                "Amount": _whole_kes(amount), "Msisdn": normalise_msisdn(msisdn),
                "BillRefNumber": str(bill_ref)}
        return await self._authorised_post(PATH_C2B_SIMULATE, body)

    # -- transport -------------------------------------------------------------------------

    async def _authorised_post(self, path, body, *, pending_allowed=False):
        # One renewal on an invalid-token reply: that reply proves the request was not taken.
        for renewed in (False, True):
            token = await self.token()
            status, reply = await self._send(
                "POST", path, json=body, headers={"Authorization": "Bearer " + token})
            if _invalid_token_reply(status, reply) and not renewed:
                log.info("daraja token refused, renewing", extra={"path": path})
                self._forget_token(token)
                continue
            error = _error_from_reply(status, reply, pending_allowed=pending_allowed)
            if error is not None or not isinstance(reply, dict):
                raise error or DarajaError("Daraja reply is not a JSON object", status=status)
            return reply
        raise AssertionError("unreachable")

    async def _send(self, method, path, **kwargs):
        """(HTTP status, parsed JSON or raw text) of one request; network trouble as DarajaError."""
        url = self.base_url + path
        try:
            async with self._session.request(method, url, timeout=self._timeout,
                                             **kwargs) as response:
                raw = await response.read()
                status = response.status
        except asyncio.TimeoutError:
            raise DarajaTimeout("no reply from Daraja %s within %.3gs"
                                % (path, self._timeout.total or 0)) from None
        except aiohttp.ClientError as error:
            raise DarajaError("cannot reach Daraja %s: %s" % (path, error)) from error
        # A proxy or a broken gateway may send HTML or undecodable bytes; keep them readable.
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text


def _whole_kes(amount):
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError("amount must be a whole number of KES, got %r" % (amount,))
    if not MIN_AMOUNT_KES <= amount <= MAX_AMOUNT_KES:
        raise ValueError("amount %d KES is outside %d..%d"
                         % (amount, MIN_AMOUNT_KES, MAX_AMOUNT_KES))
    return amount


def query_code(reply):
    """The ResultCode of an STK query reply (a string there) as an int, or None."""
    if not isinstance(reply, dict):
        return None
    code = str(reply.get("ResultCode", "")).strip()
    return int(code) if code.lstrip("-").isdigit() else None
