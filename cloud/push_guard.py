"""Limits on starting STK pushes: a prompt already waiting on a phone is not sent twice (a
double tap would otherwise charge twice), and one customer cannot flood phones with prompts."""

import collections

_PER_CUSTOMER = 5          # pushes a customer may start ...
_WINDOW_S = 60.0           # ... in this many seconds
_SAME_PROMPT_S = 60.0      # a pending prompt for the same meter, phone and amount blocks a new one
_MAX_TRACKED = 10_000


class TooManyPushes(Exception):
    """The customer started too many STK pushes recently (HTTP 429)."""


class PromptAlreadyWaiting(Exception):
    """The same payment prompt is already on the phone (HTTP 409)."""


class PushGuard:
    """In-process bookkeeping; `clock` gives seconds. Operators are not rate limited."""

    def __init__(self, clock, per_customer=_PER_CUSTOMER, window_s=_WINDOW_S,
                 same_prompt_s=_SAME_PROMPT_S):
        self.clock = clock
        self.per_customer = per_customer
        self.window_s = window_s
        self.same_prompt_s = same_prompt_s
        self._starts = {}     # user_id -> deque of start times
        self._prompts = {}    # (meter_no, phone, amount) -> (time, checkout id or None)

    async def reserve(self, store, principal, meter_no, phone, amount_kes):
        """Refuse or book a push; returns the key to pass to `sent` or `failed`."""
        now = self.clock()
        key = (meter_no, phone, amount_kes)
        held = self._prompts.get(key)
        if held is not None and now - held[0] < self.same_prompt_s:
            when, checkout = held
            waiting = checkout is None  # another request is sending it right now
            if checkout is not None:
                stk = await store.get_stk_request(checkout)
                waiting = stk is not None and stk["status"] == "pending"
            if waiting:
                raise PromptAlreadyWaiting("the same payment prompt is already on that phone"
                                           + (f" ({checkout})" if checkout else ""))
        if not principal.is_operator:
            starts = self._starts.setdefault(principal.user_id, collections.deque())
            while starts and now - starts[0] >= self.window_s:
                starts.popleft()
            if len(starts) >= self.per_customer:
                raise TooManyPushes(f"at most {self.per_customer} payment prompts per "
                                    f"{int(self.window_s)} s; try again shortly")
            starts.append(now)
        self._prompts[key] = (now, None)
        self._forget_old(now)
        return key

    def sent(self, key, checkout):
        self._prompts[key] = (self._prompts.get(key, (self.clock(),))[0], checkout)

    def failed(self, key):
        self._prompts.pop(key, None)

    def _forget_old(self, now):
        if len(self._prompts) > _MAX_TRACKED:
            horizon = max(self.same_prompt_s, self.window_s)
            for key, (when, _) in list(self._prompts.items()):
                if now - when >= horizon:
                    del self._prompts[key]
        if len(self._starts) > _MAX_TRACKED:
            for user, starts in list(self._starts.items()):
                if not starts or now - starts[-1] >= self.window_s:
                    del self._starts[user]
