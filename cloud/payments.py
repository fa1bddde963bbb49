"""The payment domain: start STK pushes, turn Daraja notifications into exactly-once credit,
and the public steps settlement (cloud/settle.py) and routing (cloud/unmatched.py) are made of.
Views, the settle task and the unmatched routing only call in here."""

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict

from cloud.callbacks import normalise_meter_no, InvalidMeterNumber
from cloud.daraja import (DarajaAuthError, DarajaError, DarajaRejected, DarajaTimeout,
                          query_code)
from cloud.phone import normalise_msisdn
from cloud.push_guard import PushGuard
from cloud.store.base import NotFound
from cloud.token_mint import TokenMinter

log = logging.getLogger("mita.payments")

_MAX_ORPHANS = 1000
_MAX_REMEMBERED = 100_000
_ACCOUNT_REF_MAX = 12
_DESCRIPTION = "Electricity"  # Daraja allows at most 13 characters
GAVE_UP_CODE = -1  # our own result code: no outcome from M-Pesa within the give-up age

# What a customer is told when a payment did not go through (Daraja ResultCodes).
FAILURE_REASONS = {
    1: "insufficient M-Pesa balance",
    1001: "subscriber busy, try again shortly",
    1019: "the prompt expired before it was answered",
    1025: "M-Pesa could not send the prompt",
    9999: "M-Pesa could not send the prompt",
    1032: "cancelled on the phone",
    1036: "the phone did not answer the prompt",
    1037: "the phone could not be reached",
    2001: "wrong M-Pesa PIN",
    17: "M-Pesa is busy, try again",
    26: "M-Pesa is busy, try again",
    GAVE_UP_CODE: "no result from M-Pesa in time",
}


class PaymentError(Exception):
    """Base of the payment domain's refusals."""


class InvalidAmount(PaymentError):
    pass


class UnknownMeter(PaymentError):
    pass


class ConfirmationUnavailable(PaymentError):
    """A notification needs M-Pesa's confirmation and M-Pesa could not be asked right now:
    it is not acknowledged, so Daraja re-sends it."""


class NotConfirmed(PaymentError):
    """M-Pesa does not confirm the payment: nothing is credited."""


class GatewayError(PaymentError):
    """Daraja refused or failed the request; nothing was stored."""

    def __init__(self, message, timeout=False):
        super().__init__(message)
        self.timeout = timeout


def failure_reason(code):
    if code in (None, 0):
        return None
    return FAILURE_REASONS.get(code, "payment failed")


def _now_ms(clock):
    return int(clock() * 1000)


class Payments:
    """Holds the store and Daraja client; every credit goes through store.record_payment."""

    def __init__(self, store, daraja, config, on_recharge=None, clock=time.time,
                 on_event=None):
        self.store = store
        self.daraja = daraja
        self.config = config
        # Told the meter number after a recharge is recorded (the link's kick): the recharge
        # itself stays in the store, where the link's one sender reads it.
        self.on_recharge = on_recharge
        # Told what changed for a meter, after the store has it (the dashboard's live feed).
        self.on_event = on_event or (lambda meter_no, kind, **fields: None)
        self.clock = clock
        self.counters = dict.fromkeys((
            "credited", "duplicates", "failed", "unknown_callbacks", "orphans_claimed",
            "orphans_dropped", "amount_mismatch", "c2b_unmatched",
            "settled_by_query", "gave_up", "unconfirmed_success", "receipt_reused",
            "c2b_over_limit"), 0)
        self.minter = TokenMinter(self.counters)
        self.push_guard = PushGuard(lambda: self.clock(), self.counters)
        self.push_guard.limits.update(getattr(config, "push_limits", None) or {})
        # STK callbacks that beat our own create_stk_request (the reply/store race).
        self._orphans = OrderedDict()
        self._locks = {}
        self._credited = OrderedDict()  # checkout ids known to be paid (bounded)

    # -- amounts ------------------------------------------------------------------------
    def check_amount_kes(self, amount):
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidAmount("amount must be a whole number of KES")
        low, high = self.config.min_amount_kes, self.config.max_amount_kes
        if not low <= amount <= high:
            raise InvalidAmount(f"amount must be between {low} and {high} KES")
        return amount

    def amount_cents_in_range(self, cents):
        return self.config.min_amount_kes * 100 <= cents <= self.config.max_amount_kes * 100

    # -- STK push -----------------------------------------------------------------------
    async def find_meter(self, meter_no):
        try:
            canonical = normalise_meter_no(meter_no)
        except InvalidMeterNumber as e:
            raise UnknownMeter(str(e)) from None
        meter = await self.store.get_meter(canonical)
        if meter is None:
            raise UnknownMeter(f"no meter {canonical}")
        return meter

    async def guarded_stk_push(self, who, meter, phone, amount_kes):
        """start_stk_push behind the push guard: one prompt waiting per phone and meter, and
        the guard's limits for `who` (TooManyPushes, PromptAlreadyWaiting)."""
        booked = await self.push_guard.reserve(self.store, who, meter["meter_no"], phone,
                                               amount_kes)
        try:
            stored = await self.start_stk_push(meter, phone, amount_kes)
        except BaseException:
            self.push_guard.failed(booked)
            raise
        self.push_guard.sent(booked, stored["checkout_request_id"])
        return stored

    async def start_stk_push(self, meter, phone, amount_kes):
        """Prompt the phone; the request is stored (pending) before this returns."""
        phone = normalise_msisdn(phone)
        amount_kes = self.check_amount_kes(amount_kes)
        meter_no = meter["meter_no"]
        try:
            reply = await self.daraja.stk_push(phone, amount_kes, meter_no[:_ACCOUNT_REF_MAX],
                                               _DESCRIPTION)
        except DarajaError as e:
            raise self._gateway_error(e, meter_no, amount_kes) from None
        checkout = reply.get("CheckoutRequestID") if isinstance(reply, dict) else None
        if not isinstance(checkout, str) or not checkout:
            raise GatewayError("M-Pesa accepted the request without a CheckoutRequestID")
        request = {
            "checkout_request_id": checkout,
            "merchant_request_id": reply.get("MerchantRequestID"),
            "meter_no": meter_no, "user_id": meter.get("user_id"), "phone_number": phone,
            "amount_cents": amount_kes * 100, "status": "pending", "result_code": None,
            "result_desc": None, "created_at": _now_ms(self.clock), "settled_at": None,
            "transaction_id": None,
        }
        try:
            stored = await self.store.create_stk_request(request) or request
        except Exception:
            # The prompt is already on the phone: leave ops enough to reconcile by hand.
            log.error("stk request sent but not stored", extra={
                "checkout_request_id": checkout, "meter_no": meter_no,
                "amount_cents": request["amount_cents"]})
            raise
        self.on_event(meter_no, "stk", checkout_request_id=checkout, status="pending")
        orphan = self._orphans.pop(checkout, None)
        if orphan is not None:
            self.counters["orphans_claimed"] += 1
            # It came before we knew the request: M-Pesa's own word first (issue #4). Without
            # it the request stays pending for a re-send or the settle task to decide.
            if not orphan.paid or await self._orphan_confirmed(checkout):
                await self.apply_stk_result(orphan)
                stored = await self.store.get_stk_request(checkout) or stored
        return stored

    async def _orphan_confirmed(self, checkout):
        try:
            return await self.confirmed_by_query(checkout)
        except ConfirmationUnavailable:
            return False

    def _gateway_error(self, error, meter_no, amount_kes):
        """What the customer is told, and what the operator needs in the log. Transport and
        credential details (hosts, OAuth codes) stay in the log."""
        fields = {"meter_no": meter_no, "amount_cents": amount_kes * 100, "error": str(error)}
        if isinstance(error, DarajaTimeout):
            # The prompt may still reach the phone: a payment made from it arrives as a
            # callback for an unknown request (logged there with its receipt).
            log.error("stk push timed out; outcome unknown", extra=fields)
            return GatewayError("M-Pesa did not answer in time; check your phone before "
                                "trying again", timeout=True)
        if isinstance(error, DarajaAuthError):
            log.error("daraja refused our credentials", extra=fields)
        elif isinstance(error, DarajaRejected):
            log.warning("stk push refused", extra=fields)
            return GatewayError(f"M-Pesa refused the request: {error.message}")
        else:
            log.error("stk push failed", extra=fields)
        return GatewayError("M-Pesa is unavailable; try again shortly")

    async def stk_status(self, checkout_request_id):
        request = await self.store.get_stk_request(checkout_request_id)
        if request is None:
            raise NotFound(f"no STK request {checkout_request_id}")
        return request

    # -- STK callback -------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def serialised(self, checkout):
        """One callback/settlement at a time per request; the entry lives while anyone uses it."""
        entry = self._locks.get(checkout)
        if entry is None:
            entry = self._locks[checkout] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[checkout]

    async def apply_stk_result(self, result):
        """Act on a parsed STK callback. Returns what happened, for logs and tests."""
        checkout = result.checkout_request_id
        if checkout in self._credited:
            # Re-sends are most of the traffic; a credited request is final, so skip the store.
            self.counters["duplicates"] += 1
            return "duplicate"
        async with self.serialised(checkout):
            request = await self.store.get_stk_request(checkout)
            if request is None:
                return await self._park_orphan(result)
            return await self._apply_locked(result, request)

    def _remember_credited(self, checkout):
        if checkout:
            self._credited[checkout] = True
            while len(self._credited) > _MAX_REMEMBERED:
                self._credited.popitem(last=False)

    async def _park_orphan(self, result):
        # Unknown to us: maybe our own push whose reply is still being stored, maybe forged.
        # Nothing is credited; if the push lands, start_stk_push claims it.
        self.counters["unknown_callbacks"] += 1
        log.warning("stk callback for unknown request", extra={
            "checkout_request_id": result.checkout_request_id, "result_code": result.result_code,
            "receipt": result.receipt, "amount_cents": result.amount_cents})
        if result.paid:
            # If the push never gets stored (its reply timed out, or we crashed in between),
            # this record is all that is left of the money: keep it before acknowledging.
            await self.store.record_unmatched_payment({
                "receipt": result.receipt, "source": "stk", "amount_cents": result.amount_cents,
                "phone_number": result.phone_number, "bill_ref": None,
                "checkout_request_id": result.checkout_request_id,
                "transaction_date": result.transaction_date,
                "reason": "callback for an STK request we have no record of",
                "ts": _now_ms(self.clock)})
        self._orphans[result.checkout_request_id] = result
        while len(self._orphans) > _MAX_ORPHANS:
            self._orphans.popitem(last=False)
            self.counters["orphans_dropped"] += 1
        return "unknown"

    async def _apply_locked(self, result, request):
        now = _now_ms(self.clock)
        if request["status"] == "success":
            self._remember_credited(request["checkout_request_id"])
            self.counters["duplicates"] += 1
            return "duplicate"
        if not result.paid:
            if request["status"] != "pending":
                self.counters["duplicates"] += 1
                return "duplicate"
            await self.store.fail_stk_request(request["checkout_request_id"], result.result_code,
                                              result.result_desc, now)
            self.on_event(request["meter_no"], "stk",
                          checkout_request_id=request["checkout_request_id"], status="failed")
            self.counters["failed"] += 1
            return "failed"
        if (request["status"] == "failed"
                and not await self.confirmed_by_query(request["checkout_request_id"])):
            # A success after a recorded failure is unexpected: only M-Pesa's own word counts.
            self.counters["unconfirmed_success"] += 1
            log.error("success callback after a failure, not confirmed by query", extra={
                "checkout_request_id": request["checkout_request_id"],
                "receipt": result.receipt, "paid_cents": result.amount_cents,
                "meter_no": request["meter_no"]})
            return "unconfirmed"
        amount = result.amount_cents
        if amount != request["amount_cents"]:
            # A push cannot collect more than it asked for: never credit above the request,
            # never credit more than was paid.
            self.counters["amount_mismatch"] += 1
            log.warning("stk amount mismatch", extra={
                "checkout_request_id": request["checkout_request_id"],
                "requested_cents": request["amount_cents"], "paid_cents": amount})
            amount = min(amount, request["amount_cents"])
        return await self.credit(request, result.receipt, amount, "stk",
                                 result.phone_number, result.transaction_date, now)

    async def confirmed_by_query(self, checkout):
        """M-Pesa's answer on whether the request was paid; ConfirmationUnavailable when M-Pesa
        cannot be asked now (a "no" then would drop a real payment for good)."""
        try:
            reply = await self.daraja.stk_query(checkout)
        except DarajaRejected:
            return False
        except DarajaError as e:  # pending, timeout, network, our own credentials
            log.warning("stk query to confirm a callback failed", extra={
                "checkout_request_id": checkout, "error": str(e)})
            raise ConfirmationUnavailable("M-Pesa cannot confirm this payment now; "
                                          "send it again later") from None
        return query_code(reply) == 0

    async def credit(self, request, receipt, amount_cents, source, phone, date, now):
        """The one way credit is made: the payment, its recharge and its token recorded
        together, once per receipt ("credited" or "duplicate"). request: meter_no, user_id
        and the checkout_request_id (or None) the payment answers."""
        outcome, _ = await self.credit_recorded(request, receipt, amount_cents, source, phone,
                                                date, now)
        return outcome

    async def credit_recorded(self, request, receipt, amount_cents, source, phone, date, now,
                              audit=None):
        """credit(), answering (outcome, the transaction recorded for the receipt); audit:
        {actor, action, reason} of a credit made by hand, kept in the same write."""
        payment = {
            "receipt": receipt, "meter_no": request["meter_no"], "user_id": request["user_id"],
            "amount_cents": amount_cents, "phone_number": phone or request.get("phone_number"),
            "transaction_date": date, "source": source,
            "checkout_request_id": request.get("checkout_request_id"), "ts": now,
        }
        if audit is not None:
            payment["audit"] = audit
        # taken inside the store's write, only for a new credit: a duplicate mints nothing
        mint = await self.minter.mint_for(self.store, request["meter_no"], amount_cents)
        created, transaction, recharge = await self.store.record_payment(payment, mint=mint)
        checkout = request.get("checkout_request_id")
        if not created and checkout and transaction.get("checkout_request_id") != checkout:
            # The receipt already paid another request: this one is not paid by it (a forged
            # or misrouted callback). It stays pending, so its own callback still credits it
            # and the settle task still asks M-Pesa about it.
            self.counters["receipt_reused"] += 1
            log.error("receipt already credited to another request", extra={
                "receipt": receipt, "checkout_request_id": checkout,
                "credited_request": transaction.get("checkout_request_id")})
            return "receipt_reused", transaction
        self._remember_credited(checkout)
        if not created:
            self.counters["duplicates"] += 1
            return "duplicate", transaction
        self.counters["credited"] += 1
        self.minter.remember(request["meter_no"], transaction.get("token_count"))
        self.on_event(request["meter_no"], "payment", receipt=receipt,
                      checkout_request_id=request.get("checkout_request_id"))
        log.info("payment credited", extra={
            "receipt": receipt, "meter_no": request["meter_no"], "amount_cents": amount_cents,
            "source": source})
        if recharge is not None and self.on_recharge is not None:
            self.on_recharge(recharge["meter_no"])
        return "credited", transaction

    # -- C2B ----------------------------------------------------------------------------
    async def validate_c2b(self, payment):
        """(ResultCode, ResultDesc) for the validation URL."""
        if payment.meter_no is None or await self.store.get_meter(payment.meter_no) is None:
            return "C2B00012", "Rejected: unknown account number"
        if not self._c2b_amount_allowed(payment.amount_cents):
            return "C2B00013", "Rejected: invalid amount"
        return "0", "Accepted"

    def _c2b_amount_allowed(self, cents):
        # Whole KES within the configured range, whose top (250,000 KES at most) is the
        # firmware's 25,000,000-cent recharge cap: the cloud never records what a meter refuses.
        return self.amount_cents_in_range(cents) and cents % 100 == 0

    async def confirm_c2b(self, payment):
        """M-Pesa has taken the money: credit the meter named by the account number, within
        the limits validation enforces (validation may be off on the shortcode)."""
        if not self._c2b_amount_allowed(payment.amount_cents):
            self.counters["c2b_over_limit"] += 1
            low, high = self.config.min_amount_kes, self.config.max_amount_kes
            return await self._c2b_unmatched(
                payment, f"amount outside the limits (whole KES, {low}..{high})")
        meter = None
        if payment.meter_no is not None:
            meter = await self.store.get_meter(payment.meter_no)
        if meter is None:
            self.counters["c2b_unmatched"] += 1
            return await self._c2b_unmatched(payment, "no meter for this account number")
        request = {"meter_no": meter["meter_no"], "user_id": meter.get("user_id"),
                   "checkout_request_id": None}
        return await self.credit(request, payment.trans_id, payment.amount_cents, "c2b",
                                 payment.msisdn, payment.trans_time, _now_ms(self.clock))

    async def _c2b_unmatched(self, payment, reason):
        # This needs a person (refund or re-route), so it is kept in the store before M-Pesa
        # is told it arrived.
        log.error("c2b payment not credited", extra={
            "receipt": payment.trans_id, "bill_ref": payment.bill_ref,
            "amount_cents": payment.amount_cents, "reason": reason})
        await self.store.record_unmatched_payment({
            "receipt": payment.trans_id, "source": "c2b", "amount_cents": payment.amount_cents,
            "phone_number": payment.msisdn, "bill_ref": payment.bill_ref,
            "checkout_request_id": None, "transaction_date": payment.trans_time,
            "reason": reason, "ts": _now_ms(self.clock)})
        return "unmatched"
