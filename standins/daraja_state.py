"""The Daraja stand-in's memory: tokens, STK requests, C2B payments, and the calls it makes back.

The HTTP side lives in standins.daraja; this module decides outcomes, builds callback
bodies in Safaricom's exact shapes and delivers them from background tasks it can cancel.
"""

import asyncio
import base64
import json
import logging
import random
import secrets
import string
import time
from dataclasses import dataclass, fields

import aiohttp
from aiohttp import web

from cloud.daraja import SANDBOX_PASSKEY, SANDBOX_SHORTCODE, eat_timestamp

C2B_SIMULATE_PATHS = ("/mpesa/c2b/v1/simulate", "/mpesa/c2b/v2/simulate")

RESULT_DESCRIPTIONS = {
    0: "The service request is processed successfully.",
    1: "The balance is insufficient for the transaction.",
    17: "System internal error.",
    26: "System busy. The service request is rejected.",
    1001: "Unable to lock subscriber, a transaction is already in process for the current "
          "subscriber",
    1019: "Transaction has expired",
    1025: "An error occurred while sending a push request",
    1032: "Request cancelled by user",
    1036: "SMSC ACK timeout",
    1037: "DS timeout user cannot be reached",
    2001: "The initiator information is invalid.",
    9999: "An error occurred while sending a push request",
}
OUTCOME_NAMES = {"success": 0, "none": 0, "insufficient": 1, "cancelled": 1032,
                 "unreachable": 1037, "wrong_pin": 2001}

_AMOUNT_PLACEHOLDER = "__mita_amount__"
_LOG_LIMIT = 2000  # a long demo run must not grow the request log without bound
_SETTINGS = ("default_outcome", "callback_delay_s", "deliver_times", "shuffle_items",
             "external_validation", "token_ttl_s")

log = logging.getLogger(__name__)


class SandboxError(Exception):
    """A request the gateway refuses; becomes {"requestId", "errorCode", "errorMessage"}."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def gateway_error(status, code, message):
    request_id = "%d-%d-1" % (random.randint(10000, 99999), random.randint(10**7, 10**8 - 1))
    return web.json_response({"requestId": request_id, "errorCode": code,
                              "errorMessage": message}, status=status)


def parse_outcome(value):
    """(ResultCode, whether a callback is sent) for an outcome name or a result code."""
    if isinstance(value, str) and value.strip().lower() in OUTCOME_NAMES:
        name = value.strip().lower()
        return OUTCOME_NAMES[name], name != "none"
    try:
        code = int(value)
    except (TypeError, ValueError):
        code = None
    if code is None or isinstance(value, bool) or code not in RESULT_DESCRIPTIONS:
        raise ValueError("unknown outcome %r: use %s or one of the result codes %s" % (
            value, ", ".join(sorted(OUTCOME_NAMES)), sorted(RESULT_DESCRIPTIONS)))
    return code, True


@dataclass
class SandboxConfig:
    consumer_key: str = "embedded-key"
    consumer_secret: str = "embedded-secret"
    shortcode: str = SANDBOX_SHORTCODE
    passkey: str = SANDBOX_PASSKEY
    c2b_shortcode: str = "600999"
    token_ttl_s: int = 3599
    timestamp_tolerance_s: float = 300.0
    callback_delay_s: float = 1.0
    default_outcome: object = "success"
    deliver_times: int = 1
    shuffle_items: bool = False
    external_validation: bool = False
    validation_timeout_s: float = 8.0
    callback_timeout_s: float = 10.0
    first_name: str = "John"
    org_balance_kes: int = 49197
    seed: object = None
    clock: object = None  # () -> Unix seconds; shared with a test's fake clock

    @classmethod
    def from_mapping(cls, mapping):
        known = {f.name for f in fields(cls)}
        unknown = set(mapping) - known
        if unknown:
            raise ValueError("unknown sandbox settings: %s" % ", ".join(sorted(unknown)))
        config = cls(**mapping)
        config.shortcode, config.c2b_shortcode = str(config.shortcode), str(config.c2b_shortcode)
        return config


def mask_msisdn(msisdn):
    """C2B v2 hides the payer's number: 254712345126 -> "2547 ***** 126"."""
    return "%s ***** %s" % (msisdn[:4], msisdn[-3:])


class Sandbox:
    """Everything the stand-in remembers; one per app, so tests can run many side by side."""

    def __init__(self, config):
        parse_outcome(config.default_outcome)
        self.config = config
        self.clock = config.clock or time.time
        self.rng = random.Random(config.seed)
        self.session = None
        self.tokens = {}
        self.stk = {}
        self.c2b = []
        self.c2b_urls = {}
        self.rules = []
        self.faults = []
        self.requests = []
        self.callbacks = []
        self._receipts = set()
        self._seq = 0
        self._tasks = set()
        self._release = asyncio.Event()
        self._balance_cents = config.org_balance_kes * 100

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self):
        self.session = aiohttp.ClientSession()

    def release_hangs(self):
        self._release.set()

    async def close(self):
        self._release.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def reset(self):
        for name in ("rules", "faults", "requests", "callbacks", "c2b"):
            getattr(self, name).clear()
        self.stk.clear()

    def _spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- auth, settings, faults, log --------------------------------------------------------

    def basic_auth_ok(self, header):
        expected = "%s:%s" % (self.config.consumer_key, self.config.consumer_secret)
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[len("Basic "):], validate=True).decode("utf-8")
        except ValueError:
            return False
        return secrets.compare_digest(given, expected)

    def issue_token(self):
        token = "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(28))
        ttl = int(self.config.token_ttl_s)
        self.tokens[token] = self.clock() + ttl
        return token, ttl

    def token_live(self, token):
        expires_at = self.tokens.get(token)
        return expires_at is not None and self.clock() < expires_at

    def update_settings(self, changes):
        unknown = set(changes) - set(_SETTINGS)
        if unknown:
            raise ValueError("cannot change %s; settable: %s"
                             % (", ".join(sorted(unknown)), ", ".join(_SETTINGS)))
        if "default_outcome" in changes:
            parse_outcome(changes["default_outcome"])
        for name, value in changes.items():
            kind = type(getattr(self.config, name))
            if kind is bool and not isinstance(value, bool):
                raise ValueError("%s must be true or false" % name)
            setattr(self.config, name, value if name == "default_outcome" else kind(value))
        return {name: getattr(self.config, name) for name in _SETTINGS}

    async def apply_fault(self, path):
        """The scripted reply for this request, None to proceed (after a hang, if scripted)."""
        for fault in self.faults:
            if fault["path"] == path and fault["count"] > 0:
                fault["count"] -= 1
                if fault.get("hang_s"):
                    try:
                        await asyncio.wait_for(self._release.wait(), float(fault["hang_s"]))
                    except asyncio.TimeoutError:
                        pass
                if fault.get("status"):
                    return gateway_error(int(fault["status"]),
                                         fault.get("errorCode", "500.003.02"),
                                         fault.get("errorMessage", "Scripted failure"))
                return None
        return None

    def log_request(self, method, path, query, text):
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        self._seq += 1
        entry = {"seq": self._seq, "method": method, "path": path,
                 "query": query, "body": body, "status": None}
        self.requests.append(entry)
        del self.requests[:-_LOG_LIMIT]
        return entry

    def snapshot(self, path=None):
        requests = [r for r in self.requests if path is None or r["path"] == path]
        stk = [{k: v for k, v in record.items() if k != "callback_text"}
               for record in self.stk.values()]
        return {"requests": requests, "callbacks": self.callbacks, "stk": stk,
                "c2b": self.c2b, "c2b_urls": self.c2b_urls, "rules": self.rules}

    # -- identifiers ------------------------------------------------------------------------

    def _digits(self, n):
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def new_receipt(self):
        while True:
            receipt = self.rng.choice("NOPQRS") + "".join(
                self.rng.choice(string.ascii_uppercase + string.digits) for _ in range(9))
            if receipt not in self._receipts:
                self._receipts.add(receipt)
                return receipt

    def new_conversation_id(self):
        return "AG_%s_%s" % (eat_timestamp(self.clock())[:8], self._digits(20))

    # -- STK --------------------------------------------------------------------------------

    def _rule_for(self, phone, amount):
        for rule in reversed(self.rules):
            if rule.get("phone", phone) != phone or rule.get("amount", amount) != amount:
                continue
            if rule.get("once"):
                self.rules.remove(rule)
            return rule
        return {"outcome": self.config.default_outcome}

    def start_stk(self, phone, amount, account_ref, callback_url):
        rule = self._rule_for(phone, amount)
        code, send = parse_outcome(rule["outcome"])
        while True:
            checkout = "ws_CO_%s%s" % (eat_timestamp(self.clock()), self._digits(6))
            if checkout not in self.stk:
                break
        record = {
            "MerchantRequestID": "%s-%s-1" % (self._digits(5), self._digits(8)),
            "CheckoutRequestID": checkout, "PhoneNumber": phone, "Amount": amount,
            "AccountReference": account_ref, "CallBackURL": callback_url,
            "ResultCode": code, "ResultDesc": RESULT_DESCRIPTIONS[code],
            "send_callback": send, "status": "pending", "MpesaReceiptNumber": None,
            "callback_text": None, "deliveries": 0,
        }
        record["deliver_times"] = int(rule.get("deliver_times", self.config.deliver_times))
        self.stk[checkout] = record
        if not rule.get("hold"):
            delay = float(rule.get("delay_s", self.config.callback_delay_s))
            self._spawn(self._delayed_settle(record, delay))
        return record

    async def _delayed_settle(self, record, delay):
        await asyncio.sleep(delay)
        await self.settle_stk(record)

    async def settle_stk(self, record):
        """The customer answers: fix the result, then call back unless the outcome is "none"."""
        if record["status"] != "pending":
            return []
        record["status"] = "settled"
        if record["ResultCode"] == 0:
            record["MpesaReceiptNumber"] = self.new_receipt()
        record["callback_text"] = self._stk_callback_text(record)
        if not record["send_callback"]:
            return []
        return [await self.deliver_stk_callback(record) for _ in range(record["deliver_times"])]

    def _stk_callback_text(self, record):
        callback = {"MerchantRequestID": record["MerchantRequestID"],
                    "CheckoutRequestID": record["CheckoutRequestID"],
                    "ResultCode": record["ResultCode"], "ResultDesc": record["ResultDesc"]}
        if record["ResultCode"] == 0:
            items = [{"Name": "Amount", "Value": _AMOUNT_PLACEHOLDER},
                     {"Name": "MpesaReceiptNumber", "Value": record["MpesaReceiptNumber"]},
                     {"Name": "Balance"},
                     {"Name": "TransactionDate", "Value": int(eat_timestamp(self.clock()))},
                     {"Name": "PhoneNumber", "Value": int(record["PhoneNumber"])}]
            if self.config.shuffle_items:
                self.rng.shuffle(items)
            callback["CallbackMetadata"] = {"Item": items}
        text = json.dumps({"Body": {"stkCallback": callback}})
        # Safaricom writes the amount as 10.00; json.dumps would write 10.0.
        return text.replace('"%s"' % _AMOUNT_PLACEHOLDER, "%d.00" % record["Amount"])

    async def deliver_stk_callback(self, record):
        record["deliveries"] += 1
        return await self._post("stk_callback", record["CallBackURL"], record["callback_text"],
                                self.config.callback_timeout_s)

    async def _post(self, kind, url, text, timeout_s):
        """POST a JSON text the way the gateway does; the outcome is logged, never raised."""
        entry = {"kind": kind, "url": url, "body": json.loads(text), "status": None,
                 "reply": None, "error": None}
        self.callbacks.append(entry)
        del self.callbacks[:-_LOG_LIMIT]
        if self.session is None:
            raise RuntimeError("the sandbox app is not running (no client session)")
        try:
            async with self.session.post(
                    url, data=text.encode("utf-8"), headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                entry["status"] = response.status
                reply = await response.text()
            try:
                entry["reply"] = json.loads(reply)
            except ValueError:
                entry["reply"] = reply
        except asyncio.TimeoutError:
            entry["error"] = "timeout after %.3gs" % timeout_s
        except aiohttp.ClientError as error:
            entry["error"] = "%s: %s" % (type(error).__name__, error)
        if entry["error"]:
            log.warning("sandbox %s to %s failed: %s", kind, url, entry["error"])
        return entry

    # -- C2B ------------------------------------------------------------------------------

    def start_c2b(self, shortcode, command, amount, msisdn, bill_ref):
        urls = self.c2b_urls[shortcode]
        self._balance_cents += amount * 100
        body = {
            "TransactionType": "Pay Bill" if command == "CustomerPayBillOnline" else "Buy Goods",
            "TransID": self.new_receipt(), "TransTime": eat_timestamp(self.clock()),
            "TransAmount": "%d.00" % amount, "BusinessShortCode": shortcode,
            "BillRefNumber": bill_ref, "InvoiceNumber": "",
            "OrgAccountBalance": "%d.%02d" % divmod(self._balance_cents, 100),
            "ThirdPartyTransID": "",
            "MSISDN": mask_msisdn(msisdn) if urls["version"] == "v2" else msisdn,
            "FirstName": self.config.first_name, "MiddleName": "", "LastName": "",
        }
        payment = {"body": body, "validation": None, "confirmed": False, "urls": dict(urls)}
        self.c2b.append(payment)
        self._spawn(self._deliver_c2b(payment, self.config.callback_delay_s))
        return payment

    async def _deliver_c2b(self, payment, delay):
        await asyncio.sleep(delay)
        text = json.dumps(payment["body"])
        urls = payment["urls"]
        if self.config.external_validation and urls.get("ValidationURL"):
            entry = await self._post("c2b_validation", urls["ValidationURL"], text,
                                     self.config.validation_timeout_s)
            payment["validation"] = _validation_verdict(entry, urls["ResponseType"])
            if payment["validation"] != "accepted":
                return
        for _ in range(max(1, int(self.config.deliver_times))):
            entry = await self._post("c2b_confirmation", urls["ConfirmationURL"], text,
                                     self.config.callback_timeout_s)
            payment["confirmed"] = payment["confirmed"] or entry["status"] == 200


def _validation_verdict(entry, response_type):
    """"accepted", "rejected:<code>", or what ResponseType says when the URL did not answer."""
    reply = entry["reply"]
    if entry["status"] == 200 and isinstance(reply, dict) and "ResultCode" in reply:
        code = str(reply["ResultCode"])
        return "accepted" if code == "0" else "rejected:%s" % code
    return "accepted" if response_type == "Completed" else "cancelled"


# Where an app built by standins.daraja.make_app keeps its Sandbox.
SANDBOX = web.AppKey("daraja_sandbox", Sandbox)
