"""STK requests as the operator's desk lists them: those still waiting for M-Pesa's answer
and those that failed, with the reason the customer was given."""

from cloud.errors import BadRequest

STATUSES = ("pending", "failed", "success")


async def list_stk_requests(payments, status, limit):
    if status not in STATUSES:
        raise BadRequest("status must be one of " + ", ".join(STATUSES))
    return await payments.store.list_stk_requests(status, limit)
