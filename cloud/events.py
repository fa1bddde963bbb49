"""The dashboard's live feed: a small in-process hub that the bridge and the payment path tell
what just changed for a meter, and that each open event stream (views/events.py) reads.

Events are hints, not records: each names a meter and what kind of thing changed, and the page
re-reads the API for the truth. So a dropped event costs a refresh, never money, and a slow
browser can never hold up a callback or the bridge (publish never waits)."""

import asyncio
import logging

log = logging.getLogger("mita.events")

_QUEUE = 256  # per stream; past it the stream is told to re-read everything
CLOSED = None  # what a stream receives when the hub shuts down


class Subscription:
    """One open stream: the meters it may see (None: every meter, for operators)."""

    def __init__(self, meters):
        self.meters = None if meters is None else frozenset(meters)
        self.queue = asyncio.Queue(_QUEUE)
        self.lagged = False

    def wants(self, meter_no):
        return self.meters is None or meter_no in self.meters

    def offer(self, event):
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # The stream is behind; one "resync" replaces what it missed.
            self.lagged = True

    async def next(self, timeout):
        """The next event, {"kind": "resync"} after a loss, CLOSED (None) at shutdown, or
        False after `timeout` seconds without one (the caller sends a keep-alive)."""
        if self.lagged and self.queue.empty():
            self.lagged = False
            return {"kind": "resync"}
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return False


class EventHub:
    def __init__(self):
        self._subs = set()
        self.closed = False
        self.counters = {"published": 0, "delivered": 0, "lagged": 0}

    def subscribe(self, meters=None):
        sub = Subscription(meters)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub):
        self._subs.discard(sub)

    def publish(self, meter_no, kind, **fields):
        """Tell every stream allowed to see `meter_no` that its `kind` changed. Never raises
        and never waits: it runs inside the bridge's and the callbacks' own paths."""
        if self.closed or not meter_no:
            return
        event = dict(fields, meter_no=meter_no, kind=kind)
        self.counters["published"] += 1
        for sub in list(self._subs):
            if sub.wants(meter_no):
                lagged = sub.lagged
                sub.offer(event)
                self.counters["lagged" if sub.lagged and not lagged else "delivered"] += 1

    def close(self):
        """Shutdown: every stream ends now, so the page's reconnect starts against the next
        process instead of waiting out the server's shutdown timeout."""
        self.closed = True
        for sub in list(self._subs):
            while True:
                try:
                    sub.queue.put_nowait(CLOSED)
                    break
                except asyncio.QueueFull:
                    sub.queue.get_nowait()
