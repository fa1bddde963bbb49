"""The bridge's long-running loops, supervised: one that dies of a bug is started again and
counted, as the meter's link tasks are (firmware/meter/link.py `supervise`). Without it a dead
connection loop, resend loop or telemetry writer stops that work for good while the rest of the
cloud carries on as if the link were up."""

import asyncio
import logging

log = logging.getLogger("mita.bridge")


async def supervised(job, counters, pause_s=1.0):
    """Await job() and, whenever it dies of an exception, call it again after pause_s,
    counting counters["task_restarts"]. A job that returns is done (nothing to restart)."""
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            counters["task_restarts"] += 1
            log.error("bridge task died; restarting", extra={
                "task": getattr(job, "__name__", repr(job)), "error": repr(error)})
        await asyncio.sleep(pause_s)
