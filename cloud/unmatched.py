"""Money M-Pesa took that names no meter we could credit (a mistyped paybill account, a
callback for an STK request we never stored): listed for operators, routed to a meter once."""

import logging

from cloud.payments import InvalidAmount, NotConfirmed
from cloud.store.base import Conflict, NotFound

log = logging.getLogger("mita.payments")
_SCAN_LIMIT = 100_000


async def list_unmatched(payments, limit=500):
    """Unmatched payments not credited since, oldest first."""
    still = []
    # Routed ones stay in the store (history), so filter before cutting to the limit.
    for record in await payments.store.list_unmatched_payments(_SCAN_LIMIT):
        if not await _credited_elsewhere(payments.store, record):
            still.append(record)
            if len(still) >= limit:
                break
    return still


async def _credited_elsewhere(store, record):
    # An orphan callback claimed by its push, or settled by query under the checkout id.
    if await store.get_transaction_by_receipt(record["receipt"]) is not None:
        return True
    checkout = record.get("checkout_request_id")
    stk = await store.get_stk_request(checkout) if checkout else None
    return stk is not None and stk["status"] == "success"


async def credit_unmatched(payments, receipt, meter_no):
    """An operator routes an unmatched payment to a meter; once per receipt. Returns the
    outcome ("credited" or "duplicate")."""
    record = await payments.store.get_unmatched_payment(receipt)
    if record is None:
        raise NotFound(f"no unmatched payment {receipt}")
    if not payments.amount_cents_in_range(record["amount_cents"]):
        # kept because it was over the limits: a meter would refuse it too; it is a refund
        raise InvalidAmount("this payment is outside the recharge limits: refund it")
    meter = await payments.find_meter(meter_no)
    checkout = record.get("checkout_request_id")
    stored = await payments.store.get_stk_request(checkout) if checkout else None
    if stored is not None and stored["meter_no"] != meter["meter_no"]:
        # the push was stored after all: its meter is the one the customer paid for
        raise Conflict(f"{checkout} was a payment for meter {stored['meter_no']}")
    if record["source"] == "stk" and checkout:
        # Nobody asked for this callback: M-Pesa's own word first (issue #4).
        if not await payments.confirmed_by_query(checkout):
            raise NotConfirmed(f"M-Pesa does not confirm {checkout} as paid")
    request = {"meter_no": meter["meter_no"], "user_id": meter.get("user_id"),
               "checkout_request_id": checkout}
    outcome = await payments.credit(request, receipt, record["amount_cents"], record["source"],
                                    record.get("phone_number"), record.get("transaction_date"),
                                    int(payments.clock() * 1000))
    log.info("unmatched payment routed", extra={"receipt": receipt, "outcome": outcome,
                                                "meter_no": meter["meter_no"]})
    return outcome
