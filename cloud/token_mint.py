"""A payment's token, made before its store write and off the store's writer.

The OpenPAYGo encoder hashes from count 0 up to the new count, so a token costs O(the meter's
payment history): 0.02 ms for a new meter, 3.5 ms after 1,000 payments with the C hash
cloud/tokens.py gives it (27 ms with the encoder's own; bench/token_mint.py).
Made inside the credit's write (the store's contract, so that a duplicate never mints), that
time was spent on SQLite's one writer thread, where every other payment and telemetry write
waits. Here the token for the meter's current count is made first, in a pool of processes
(the encoder is pure Python: threads would share one core), and the store's write takes it if
the count is still the one it was made for; if another credit to the same meter took that
count in between, the write mints as before (counted: `tokens_ahead_stale`). The count and the
exactly-once rules stay where they were: in the write.

Meters with a short history skip the pool (a round trip costs more than their token). Which
meters have a long one is remembered from the credits this process made (bounded), so a
payment costs no extra store read unless its meter is one of them: the first payment after a
start to a long-paid meter is minted in the write, as is one whose count another instance has
moved on (counted stale).
"""

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
from collections import OrderedDict

from cloud import tokens
from cloud.store.base import StoreError

log = logging.getLogger("mita.tokens")

AHEAD_FROM_COUNT = 500  # past count 500 a token costs about 1 ms in the write (1.8 us a count)
REMEMBERED_METERS = 100_000


class TokenMinter:
    """Hands the store a `mint` for one payment, its token made ahead when that is worth it.
    counters: a dict it counts into (tokens_ahead, tokens_ahead_stale, tokens_ahead_failed)."""

    def __init__(self, counters, workers=None, ahead_from=AHEAD_FROM_COUNT):
        self.counters = counters
        for name in ("tokens_ahead", "tokens_ahead_stale", "tokens_ahead_failed"):
            counters.setdefault(name, 0)
        self.workers = workers or os.cpu_count() or 2
        self.ahead_from = ahead_from
        self._pool = None
        self._counts = OrderedDict()  # meter -> the token count its last credit here took

    def remember(self, meter_no, count):
        """A credit to the meter took this count (what its next token is made after)."""
        if type(count) is not int:
            return
        self._counts[meter_no] = count
        self._counts.move_to_end(meter_no)
        if len(self._counts) > REMEMBERED_METERS:
            self._counts.popitem(last=False)

    async def mint_for(self, store, meter_no, amount_cents):
        """The mint(meter_no, device_key, last_count) that store.record_payment calls."""
        made = await self._made_ahead(store, meter_no, amount_cents)

        def mint(meter, device_key, last_count):
            if made is not None:
                if made[0] == (meter, device_key, last_count):
                    return made[1]
                self.counters["tokens_ahead_stale"] += 1
            return tokens.mint(meter, device_key, last_count, amount_cents)
        return mint

    async def _made_ahead(self, store, meter_no, amount_cents):
        """((meter_no, device_key, last_count), token) or None (then the write mints)."""
        if not tokens.carries(amount_cents):
            return None
        last = self._counts.get(meter_no)
        if last is None or last < self.ahead_from:
            return None
        try:
            device_key = await store.get_device_key(meter_no)
        except StoreError:
            return None  # the write will say what is wrong with the store
        if not device_key:
            return None
        try:
            token = await asyncio.get_running_loop().run_in_executor(
                self._executor(), tokens.mint, meter_no, device_key, last, amount_cents)
        except concurrent.futures.process.BrokenProcessPool:
            self.counters["tokens_ahead_failed"] += 1
            log.error("token pool broke; minting in the store's write until it is back")
            self._pool = None
            return None
        self.counters["tokens_ahead"] += 1
        return (meter_no, device_key, last), token

    def _executor(self):
        if self._pool is None:
            # forkserver: the cloud has threads (the store's writer), which fork would copy
            # mid-state; the server process starts clean and forks the workers from itself
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("forkserver"))
        return self._pool

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
