"""Background settlement: STK requests whose callback never came are settled by STK query."""

import asyncio
import contextlib
import logging

log = logging.getLogger("mita.settle")


async def settle_forever(payments, every_s):
    """One pass every `every_s` seconds; a failing pass is logged and the loop carries on."""
    while True:
        await asyncio.sleep(every_s)
        try:
            outcomes = await payments.settle_pending()
        except Exception:
            log.exception("settle pass failed")
            continue
        if outcomes:
            log.info("settle pass", extra={"outcomes": outcomes})


@contextlib.asynccontextmanager
async def running_settler(payments, every_s):
    task = asyncio.create_task(settle_forever(payments, every_s), name="mita-settle")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
