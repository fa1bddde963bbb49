"""Limits on abuse that is not about money: clients guessing API keys, ID tokens or meter
signatures are locked out after `limit` failures in `window_s` (HTTP 429 with Retry-After, even
with a right key, until the window passes), and a counter for each kind of refusal the HTTP
layer makes (outside the callback allow-list, body too large, JSON too deep).

Failures are counted in the store (Store.take_rate_slot), so every instance and every restart
sees the same lockouts. A client is its socket address (`request.remote`): behind a proxy,
every client would share the proxy's, so the proxy should do this limit itself."""

import math

from cloud.auth import AuthError

AUTH_FAILURES = (10, 300)     # failed sign-ins a client may make per 5 minutes
COUNTER_NAMES = ("auth_failures", "auth_locked_out", "callbacks_outside_allowlist",
                 "callbacks_bad_secret", "bodies_too_large", "json_too_deep")


class TooManyAttempts(Exception):
    """This client failed to authenticate too often recently (HTTP 429, Retry-After)."""

    def __init__(self, message, retry_after_s):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AbuseGuard:
    """`clock` gives seconds; counters are this process's, the lockouts the store's."""

    def __init__(self, store, clock, auth_failures=AUTH_FAILURES):
        self.store = store
        self.clock = clock
        self.auth_failures = auth_failures
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)

    def _limits(self, client):
        most, window = self.auth_failures
        return [("auth:" + (client or "unknown"), most, window * 1000)]

    async def authenticate(self, client, attempt):
        """await attempt() unless the client is locked out; a failure (AuthError from it)
        is counted against the client and raised again."""
        now_ms = int(self.clock() * 1000)
        wait_ms, _ = await self.store.take_rate_slot(self._limits(client), now_ms, count=False)
        if wait_ms:
            self.counters["auth_locked_out"] += 1
            most, window = self.auth_failures
            raise TooManyAttempts(f"more than {most} failed sign-ins from this address in "
                                  f"{window} s; try again later",
                                  max(1, math.ceil(wait_ms / 1000)))
        try:
            return await attempt()
        except AuthError:
            self.counters["auth_failures"] += 1
            await self.store.take_rate_slot(self._limits(client), now_ms)
            raise
