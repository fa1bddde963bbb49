"""Tokens an operator issues by hand (goodwill credit, a refund): a credit through the one
payment path (Payments.credit_recorded), so it also goes to the meter over MQTT and the meter
credits whichever of recharge and typed token arrives first, with an audit record of who,
when and why in the same write."""

import logging
import re
import uuid

from cloud import tokens
from cloud.payments import PaymentError
from cloud.store.base import Conflict

log = logging.getLogger("mita.payments")
_REASON_MAX = 200
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


class InvalidReason(PaymentError):
    pass


class TokenUnavailable(PaymentError):
    """No token can be made for this credit: nothing is credited."""


async def issue_operator_token(payments, operator_id, meter, amount_kes, reason,
                               request_id=None):
    """(created, the transaction) of source "operator_token" crediting amount_kes to the
    meter, with its token; refused before anything is written when no token could carry it.
    request_id (the caller's own, optional) makes a retried request the same credit."""
    amount_kes = payments.check_amount_kes(amount_kes)
    if (not isinstance(reason, str) or not reason.strip() or len(reason) > _REASON_MAX
            or not reason.isprintable()):
        raise InvalidReason(f"a reason of 1 to {_REASON_MAX} printable characters is required")
    if not tokens.carries(amount_kes * 100):
        raise TokenUnavailable(f"no token can carry KES {amount_kes}")
    if not await payments.store.get_device_key(meter["meter_no"]):
        raise TokenUnavailable("the meter has no key to make tokens with")
    if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
        raise InvalidReason("request_id must be 1 to 40 letters, digits, - or _")
    # A receipt of our own: without a request_id each request is a new credit.
    receipt = "OPT-" + (request_id or uuid.uuid4().hex[:16].upper())
    request = {"meter_no": meter["meter_no"], "user_id": meter.get("user_id"),
               "checkout_request_id": None}
    audit = {"actor": operator_id, "action": "operator_token", "reason": reason.strip()}
    outcome, transaction = await payments.credit_recorded(
        request, receipt, amount_kes * 100, "operator_token", None, None,
        int(payments.clock() * 1000), audit=audit)
    if outcome != "credited":
        if (transaction["meter_no"], transaction["amount_cents"], transaction["source"]) != (
                meter["meter_no"], amount_kes * 100, "operator_token"):
            raise Conflict("request_id %s already credited something else" % request_id)
        return False, transaction  # the retry of a request already credited
    log.info("operator token issued", extra={
        "receipt": receipt, "meter_no": meter["meter_no"], "operator": operator_id,
        "amount_cents": amount_kes * 100})
    return True, transaction
